"""Where each sample of a study stands on disk, so a re-run (or a killed shard's restart) picks up where it stopped.

A sample's directory is complete when its metadata.json says so (written last, after every file it names) and it
has its video when one is wanted. Between generation and that moment the directory holds the finished trace and a
hidden ``.study-pending.json`` (what metadata.json will say about the model, prompt and timings): a study stopped
then re-renders from the trace without loading the model. Anything else (a trace still in ``.part`` files, a video
still under its temporary name) is generated again; the temporary files are cleared first. Model-free.
"""

from __future__ import annotations

import json
import logging
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from attnviz.errors import AttnvizError, one_line
from attnviz.files import TRACE_DIR, TRACE_HEADER
from attnviz.metadata import FAILED, RunMetadata
from attnviz.outputs import write_json_atomic

log = logging.getLogger(__name__)
SAMPLES_DIR = "samples"  # <job dir>/samples/<name>/: one run directory per sample
PENDING = ".study-pending.json"
DONE, RENDER, GENERATE = "done", "render", "generate"


@dataclass(frozen=True)
class SampleState:
    kind: str  # done | render | generate
    meta: RunMetadata | None = None  # a complete (or failed) sample's metadata
    pending: dict[str, Any] | None = None  # RENDER: the record a render needs (see pending_record)


def load_meta(run_dir: Path) -> RunMetadata | None:
    try:
        return RunMetadata.load(run_dir)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def has_video(run_dir: Path, meta: RunMetadata) -> bool:
    name = meta.files.get("video")
    return bool(name) and (run_dir / name).is_file()


def inspect_sample(run_dir: Path, want_video: bool) -> SampleState:
    """done: nothing to do; render: the trace is finished, only the outputs are missing; generate: the rest."""
    meta = load_meta(run_dir)
    if meta is not None and meta.complete and (has_video(run_dir, meta) or not want_video):
        return SampleState(DONE, meta)
    trace_done = (run_dir / TRACE_DIR / TRACE_HEADER).is_file()
    pending = read_pending(run_dir) if trace_done else None
    if pending is not None:
        return SampleState(RENDER, meta, pending)
    if meta is not None and meta.complete and trace_done and meta.model is not None:  # a video asked for later
        return SampleState(RENDER, meta, {"add_video": True, "model": asdict(meta.model), "layer": meta.layer})
    return SampleState(GENERATE, meta)


def pending_record(model: Any, sample: dict[str, Any], prompt: str, timings: dict[str, float],
                   config: dict[str, Any], layer: int) -> dict[str, Any]:
    """What a render of a generated trace needs besides the trace (a RunRecord's fields, JSON-ready) and its layer."""
    return {"model": asdict(model), "sample": sample, "prompt": prompt, "timings": timings, "config": config,
            "layer": layer}


def write_pending(run_dir: Path, record: dict[str, Any]) -> None:
    write_json_atomic(run_dir / PENDING, record)


def read_pending(run_dir: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((run_dir / PENDING).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and {"model", "layer"} <= set(record) else None


def clear_pending(run_dir: Path) -> None:
    (run_dir / PENDING).unlink(missing_ok=True)


def error_line(err: BaseException) -> str:
    """One line: the message of an error the user can act on, else the exception's type and message."""
    if isinstance(err, AttnvizError):
        return one_line(str(err))
    return one_line(f"{type(err).__name__}: {err}")


def record_failure(run_dir: Path, err: BaseException, sample: dict[str, Any], config: dict[str, Any]) -> str:
    """metadata.json with status failed and the one-line error (a traceback too when it is a bug); returns the line."""
    line = error_line(err)
    run_dir.mkdir(parents=True, exist_ok=True)
    bug = not isinstance(err, AttnvizError | OSError)
    tb = "".join(traceback.format_exception(type(err), err, err.__traceback__)) if bug else None
    RunMetadata(status=FAILED, sample=sample, error=line, traceback=tb, config=config).save(run_dir)
    return line
