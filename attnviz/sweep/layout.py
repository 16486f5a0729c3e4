"""Run directories of a sweep: named by their swept values (``layer_idx=20,sample_idx=3``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from attnviz.sweep.overrides import bare_key, load_record

MAX_NAME_BYTES = 200  # file systems cap one name at 255 bytes
# Keys that do not change a run's outputs never name a directory, so a re-run with skip_existing=true finds it.
UNNAMED_KEYS = frozenset({"skip_existing", "reuse_traces", "trace_cache", "debug"})


def override_key(override: str) -> str:
    """A job's override string (``+model.path=/ckpt``) -> its key (``model.path``)."""
    return bare_key(override.split("=", 1)[0])


def swept_keys(sweep_dir: str | Path) -> set[str] | None:
    """Keys the sweep varies, from the ``multirun.yaml`` Hydra's sweeper writes first; None when there is none."""
    record = load_record(sweep_dir)  # cached per process and file version: every job of a sweep asks
    return None if record is None else set(record.swept_keys())


def sweep_subdir(sweep_dir: str, job_overrides: Iterable[str], job_num: int) -> str:
    """A run's directory in a sweep: its swept values (``layer_idx=20,sample_idx=3``); the job number if none.

    Values the whole sweep shares (a checkpoint path, the video size) stay out of the name. Slashes in values
    become ``_`` so each run is one directory level; over-long names are cut and kept unique with a digest.
    """
    swept = swept_keys(sweep_dir)
    named = sorted(
        o for o in job_overrides
        if override_key(o) not in UNNAMED_KEYS and (swept is None or override_key(o) in swept)
    )
    name = ",".join(named).replace("/", "_") or str(job_num)
    if len(name.encode()) > MAX_NAME_BYTES:
        digest = hashlib.sha1(name.encode()).hexdigest()[:10]
        name = f"{name.encode()[: MAX_NAME_BYTES - 11].decode(errors='ignore')}-{digest}"
    return name
