"""``metadata.json``: what a run did, as one dataclass with its own save and load.

Written last and atomically: ``status: complete`` means every file it names is whole. A failed sweep job writes
``status: failed`` with its one-line error. Model-free.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from attnviz.files import METADATA_NAME
from attnviz.trace_store import atomic_write, json_text

ROW_SEMANTICS = (
    "frame t shows generated token t in blue and the head-averaged attention row of the query just before it "
    "(the row that produced token t; for t = 0 the prompt's last position)"
)
COMPLETE, FAILED = "complete", "failed"


@dataclass(frozen=True)
class ModelInfo:
    """The loaded model, as a run reports it."""

    path: str
    family: str
    device: str
    dtype: str
    num_layers: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelInfo:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class TextStart:
    position: int  # first sequence position of the text panel
    start_phrase_found: bool


@dataclass
class RunMetadata:
    """One run directory's record; the JSON keys are the field names."""

    status: str  # complete | failed
    model: ModelInfo | None = None
    sample: dict[str, Any] = field(default_factory=dict)  # the dataset sample, "id" first
    layer: int | None = None
    mode: str | None = None  # generate | replay
    captured_layers: list[int] = field(default_factory=list)
    captured_head_layers: list[int] = field(default_factory=list)
    row_semantics: str = ROW_SEMANTICS
    prompt: str | None = None
    generated_text: str | None = None
    prompt_len: int | None = None
    n_generated: int | None = None
    n_frames: int | None = None
    text_start: TextStart | None = None
    images: list[dict[str, Any]] = field(default_factory=list)  # ImageGeometry fields per image
    tokens: list[dict[str, Any]] = field(default_factory=list)  # pos, id, text, kind, generated
    files: dict[str, str] = field(default_factory=dict)  # video, trace, viewer, poster, attention_share
    timings: dict[str, float] = field(default_factory=dict)
    slurm_job_id: str | None = field(default_factory=lambda: os.environ.get("SLURM_JOB_ID"))
    versions: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # the resolved config of the run
    trace_cache: dict[str, Any] | None = None  # a sweep's shared trace: key, entry, generated
    source_run: str | None = None  # render_only: the run whose trace was rendered
    correct: bool | None = None  # the scorer's verdict on the answer (null: no ground truth to compare with)
    error: str | None = None  # status failed: the one-line error
    traceback: str | None = None  # status failed by a bug: where

    @property
    def complete(self) -> bool:
        return self.status == COMPLETE

    @property
    def sample_id(self) -> str:
        return str(self.sample.get("id", ""))

    def to_json(self) -> dict[str, Any]:
        """The JSON object; optional facts a run does not have are left out."""
        optional = ("trace_cache", "source_run", "error", "traceback")  # correct is always written: null says "unknown"
        return {k: v for k, v in asdict(self).items() if not (k in optional and v is None)}

    def save(self, run_dir: str | Path) -> Path:
        path = Path(run_dir) / METADATA_NAME
        text = json_text(self.to_json(), indent=2, default=str)
        atomic_write(path, lambda f: f.write(text.encode("utf-8")))
        return path

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunMetadata:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if values.get("model") is not None:
            values["model"] = ModelInfo.from_json(values["model"])
        if values.get("text_start") is not None:
            values["text_start"] = TextStart(**values["text_start"])
        return cls(**values)

    @classmethod
    def load(cls, run_dir: str | Path) -> RunMetadata:
        """Raises OSError when there is none, ValueError when it is not a metadata object."""
        data = json.loads((Path(run_dir) / METADATA_NAME).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or "status" not in data:
            raise ValueError(f"{Path(run_dir) / METADATA_NAME} is not an attnviz metadata file")
        return cls.from_json(data)


def read_metadata(run_dir: str | Path) -> dict[str, Any]:
    """metadata.json as plain JSON (for tools and tests that want the file as written)."""
    return json.loads((Path(run_dir) / METADATA_NAME).read_text(encoding="utf-8"))
