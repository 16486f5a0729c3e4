"""Names inside a sweep directory: run directories named by their overrides, the trace cache, summary files."""

from __future__ import annotations

import hashlib

TRACES_DIR = ".traces"  # the shared traces of a sweep (attnviz.sweep.cache)
SUMMARY_JSON = "summary.json"
INDEX_HTML = "index.html"
SHARE_PLOT = "image_attention_share.png"
VIEWER_HTML = "viewer.html"  # written into run directories by the viewer, when present
MAX_NAME_BYTES = 200  # file systems cap one name at 255 bytes


def sweep_subdir(override_dirname: str, job_num: int) -> str:
    """A run's directory in a sweep: its overrides (``layer_idx=20,sample_idx=3``); the job number if none.

    Slashes (paths in values) become ``_`` so each run is one directory level; over-long names are cut and
    made unique again with a digest.
    """
    name = str(override_dirname).replace("/", "_") or str(job_num)
    if len(name.encode()) > MAX_NAME_BYTES:
        digest = hashlib.sha1(name.encode()).hexdigest()[:10]
        name = f"{name.encode()[: MAX_NAME_BYTES - 11].decode(errors='ignore')}-{digest}"
    return name
