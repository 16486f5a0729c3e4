"""Names inside a sweep directory: run directories named by their swept values, the trace cache, summary files."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from omegaconf import OmegaConf

TRACES_DIR = ".traces"  # the shared traces of a sweep (attnviz.sweep.cache)
SUMMARY_JSON = "summary.json"
INDEX_HTML = "index.html"
SHARE_PLOT = "image_attention_share.png"
VIEWER_HTML = "viewer.html"  # written into run directories by the viewer
MAX_NAME_BYTES = 200  # file systems cap one name at 255 bytes
# Keys that do not change a run's outputs never name a directory, so a re-run with skip_existing=true finds it.
UNNAMED_KEYS = frozenset({"skip_existing", "reuse_traces", "trace_cache", "debug"})


def override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def swept_keys(sweep_dir: str | Path) -> set[str] | None:
    """Keys the sweep varies, from the ``multirun.yaml`` Hydra's sweeper writes first; None when there is none."""
    record = Path(sweep_dir) / "multirun.yaml"
    if not record.is_file():
        return None
    stat = record.stat()
    return set(_swept_keys(str(record), stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=8)
def _swept_keys(record: str, mtime_ns: int, size: int) -> frozenset[str]:
    """Parsed once per process and file version (``mtime_ns``, ``size`` key the cache): every job of a sweep asks."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    config = OmegaConf.load(record)
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    arguments = [f"{k}={v}" for k, v in params.items()] + list(OmegaConf.select(config, "hydra.overrides.task") or [])
    parsed = OverridesParser.create().parse_overrides(arguments)
    return frozenset(override.get_key_element().lstrip("+~") for override in parsed if override.is_sweep_override())


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
