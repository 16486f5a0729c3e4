"""The end of a multirun of comparison jobs (``compare=demo layer_idx=0,3 -m``, SLURM shards): every job's
record checked, one report over all of them. Model-free: it reads the jobs' compare.json files.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from attnviz.compare.plan import RECORD

log = logging.getLogger(__name__)


def write_pooled_report(folder: Path) -> None:
    """The report over every comparison below ``folder``; a warning when there is nothing to report."""
    from attnviz.report.build import NoMetrics, write_report

    try:
        write_report(folder)
    except NoMetrics as err:
        log.warning("compare: no report: %s", err)


def job_records(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every comparison job's record below ``sweep_dir`` (the jobs' own, not their samples', not hidden)."""
    found = []
    for path in sorted(sweep_dir.rglob(RECORD)):
        parts = path.relative_to(sweep_dir).parts
        if any(p.startswith(".") or p in ("samples", "models") for p in parts[:-1]):
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        if data.get("kind") == "compare":
            found.append({**data, "job_dir": str(path.parent)})
    return found


def end_compare(sweep_dir: Path, expected_jobs: int | None) -> dict[str, Any]:
    """Totals over the jobs and the pooled report; ``complete`` only when every job compared every sample."""
    records = job_records(sweep_dir)
    n_samples = sum(int(r.get("n_samples", 0)) for r in records)
    n_compared = sum(int(r.get("n_compared", 0)) for r in records)
    finished = sum("n_samples" in r for r in records)
    jobs = expected_jobs if expected_jobs is not None else len(records)
    complete = finished == len(records) == jobs and n_compared == n_samples
    if records:
        write_pooled_report(sweep_dir)
    return {"n_jobs": jobs, "n_finished_jobs": finished, "n_samples": n_samples, "n_compared": n_compared,
            "complete": complete}
