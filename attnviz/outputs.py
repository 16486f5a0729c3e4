"""Run-directory helpers: a clean start, package versions, the token table, JSON written atomically.

Every output is written under a hidden temporary name and renamed when whole, and metadata.json (status
complete) comes last: a run killed at any point leaves no file under a final name that it did not finish, and
no metadata claiming it did. The next run in the folder clears what the killed one left behind.
"""

from __future__ import annotations

import logging
import platform
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from attnviz.files import METADATA_NAME, TRACE_DIR
from attnviz.metadata import read_metadata
from attnviz.trace import Trace, atomic_write
from attnviz.trace_store import json_text

__all__ = ["package_versions", "prepare_run_dir", "read_metadata", "token_table", "write_json_atomic"]
log = logging.getLogger(__name__)
# Temporary names of unfinished files: atomic_write's ".<name>.tmp", the video's ".<stem>.partial.mp4", and
# the trace rows' "<name>.part" while the model runs.
STALE_PATTERNS = (".*.tmp", ".*.partial.*", "*.part")
PACKAGES = ("attnviz", "torch", "transformers", "hydra-core", "numpy", "pillow", "imageio-ffmpeg")


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
    text = json_text(payload, indent=2, default=str)
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    return path


def prepare_run_dir(run_dir: Path, *, keep_metadata: bool = False) -> Path:
    """Create ``run_dir`` and clear what an interrupted run left: temporary files, and (unless ``keep_metadata``)
    the old metadata.json, which would describe outputs this run is about to replace."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    stale = [p for folder in (run_dir, run_dir / TRACE_DIR) for pattern in STALE_PATTERNS for p in folder.glob(pattern)]
    for path in stale:
        if path.is_file():
            path.unlink(missing_ok=True)
    if stale:
        log.info("removed %d unfinished file(s) of an earlier run in %s", len(stale), run_dir)
    if not keep_metadata:
        (run_dir / METADATA_NAME).unlink(missing_ok=True)
    return run_dir
