"""Run-directory files: metadata.json (written last, atomically), package versions, a clean start.

Every output is written under a hidden temporary name and renamed when whole, and metadata.json (status
complete) comes last: a run killed at any point leaves no file under a final name that it did not finish, and
no metadata claiming it did. The next run in the folder clears what the killed one left behind.
"""

from __future__ import annotations

import json
import logging
import platform
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from attnviz.trace import Trace, atomic_write

log = logging.getLogger(__name__)
VIDEO_NAME = "combined_attention_visualization_layer{layer}.mp4"
METADATA_NAME = "metadata.json"
# Temporary names of unfinished files: atomic_write's ".<name>.tmp", the video's ".<stem>.partial.mp4", and
# the trace rows' "<name>.part" while the model runs.
STALE_PATTERNS = (".*.tmp", ".*.partial.*", "*.part")
PACKAGES = ("attnviz", "torch", "transformers", "hydra-core", "numpy", "pillow", "imageio-ffmpeg")


def video_name(layer: int) -> str:
    return VIDEO_NAME.format(layer=layer)


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def token_table(trace: Trace) -> list[dict[str, Any]]:
    return [
        {"pos": i, "id": tid, "text": text, "kind": kind, "generated": i >= trace.prompt_len}
        for i, (tid, text, kind) in enumerate(zip(trace.token_ids, trace.token_texts, trace.token_kinds, strict=True))
    ]


def write_json_atomic(path: Path, payload: dict[str, Any]) -> Path:
    text = json.dumps(payload, indent=2, ensure_ascii=False, default=str)
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    return path


def read_metadata(run_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / "metadata.json").read_text(encoding="utf-8"))


def prepare_run_dir(run_dir: Path, *, keep_metadata: bool = False) -> Path:
    """Create ``run_dir`` and clear what an interrupted run left: temporary files, and (unless ``keep_metadata``)
    the old metadata.json, which would describe outputs this run is about to replace."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    stale = [p for folder in (run_dir, run_dir / "trace") for pattern in STALE_PATTERNS for p in folder.glob(pattern)]
    for path in stale:
        if path.is_file():
            path.unlink(missing_ok=True)
    if stale:
        log.info("removed %d unfinished file(s) of an earlier run in %s", len(stale), run_dir)
    if not keep_metadata:
        (run_dir / METADATA_NAME).unlink(missing_ok=True)
    return run_dir
