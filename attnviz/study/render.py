"""One sample's outputs from its finished trace, in a render worker: video (when asked for), viewer page, pictures,
metrics and metadata.json last, through :func:`attnviz.rerender.finish_run`. Model-free: a worker never imports
torch or transformers, and needs only the trace on disk (the input images are kept in it) and the settings.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from attnviz.files import METADATA_NAME, TRACE_DIR
from attnviz.metadata import ModelInfo, RunMetadata
from attnviz.outputs import prepare_run_dir
from attnviz.rerender import MetricsPlan, RunRecord, finish_run, load_inputs, render_outputs
from attnviz.schema import RenderConfig, VideoConfig
from attnviz.study.state import clear_pending, error_line, record_failure
from attnviz.trace import load_trace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderTask:
    """Everything a worker needs for one sample (small: the rows stay on disk)."""

    index: int  # the sample's dataset index
    run_dir: str
    record: dict[str, Any]  # state.pending_record: model, sample, prompt, timings, config, layer
    render: RenderConfig
    video: VideoConfig  # codec resolved by the study (auto probed once, in the main process)
    start_phrase: str
    make_video: bool
    metrics_plan: MetricsPlan | None = None


@dataclass(frozen=True)
class RenderResult:
    index: int
    ok: bool
    error: str | None = None
    render_s: float = 0.0  # this worker's time on the sample (video, pictures, metrics, metadata)
    files: dict[str, str] | None = None
    n_generated: int | None = None


def render_sample(task: RenderTask) -> RenderResult:
    """Render one sample; a failure is recorded in its metadata.json (status failed) and returned, never raised."""
    t0 = time.perf_counter()
    run_dir = Path(task.run_dir)
    try:
        n_steps = add_video(task, run_dir) if task.record.get("add_video") else finish(task, run_dir)
        return RenderResult(task.index, True, render_s=time.perf_counter() - t0, files=_files(run_dir),
                            n_generated=n_steps)
    except Exception as err:  # one sample's failure must not stop the study
        line = _record(run_dir, err, task)
        return RenderResult(task.index, False, error=line, render_s=time.perf_counter() - t0)


def finish(task: RenderTask, run_dir: Path) -> int:
    """A generated sample: every output, metadata.json last, then its pending record goes; returns its steps."""
    prepare_run_dir(run_dir)  # clears what a stopped render left (a video under its temporary name)
    trace = load_trace(run_dir / TRACE_DIR)
    images = load_inputs(run_dir / TRACE_DIR, len(trace.images))
    record = task.record
    run = RunRecord(ModelInfo.from_json(record["model"]), record["sample"], record["prompt"],
                    dict(record["timings"]), record["config"], metrics_plan=task.metrics_plan)
    finish_run(run, trace, int(record["layer"]), images, task.render, task.video, start_phrase=task.start_phrase,
               run_dir=run_dir, make_video=task.make_video)
    clear_pending(run_dir)
    return trace.n_steps


def add_video(task: RenderTask, run_dir: Path) -> int:
    """A complete sample asked for a video later: the video (and pictures) from its trace; metadata.json keeps
    everything else it says (metrics, score) and gains the video. A stop midway leaves it complete without one."""
    prepare_run_dir(run_dir, keep_metadata=True)
    meta = RunMetadata.load(run_dir)
    trace = load_trace(run_dir / TRACE_DIR)
    images = load_inputs(run_dir / TRACE_DIR, len(trace.images))
    out = render_outputs(trace, int(meta.layer or 0), images, task.render, task.video, sample=meta.sample,
                         start_phrase=task.start_phrase, run_dir=run_dir)
    replace(meta, files={**meta.files, **out.files}, text_start=out.text_start,
            timings={**meta.timings, **out.timings}).save(run_dir)
    return trace.n_steps


def _record(run_dir: Path, err: BaseException, task: RenderTask) -> str:
    try:
        return record_failure(run_dir, err, task.record.get("sample", {}), task.record.get("config", {}))
    except OSError:  # the disk itself failed: the study's index still gets the line
        return error_line(err)


def _files(run_dir: Path) -> dict[str, str]:
    """metadata.json's files that exist (the index links them), plus metadata.json itself."""
    meta = RunMetadata.load(run_dir)
    return {k: v for k, v in meta.files.items() if (run_dir / v).exists()} | {"metadata": METADATA_NAME}
