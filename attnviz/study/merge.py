"""One index for a multirun of study jobs (shards): ``<sweep dir>/study.json`` and ``index.html`` list every sample
of every job, with paths relative to the sweep directory, and add up what the jobs cost. Written by the sweep's
callback at the end of the multirun, or by ``python -m attnviz.study <sweep dir>`` (a sweep whose launcher was
stopped). Model-free.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from attnviz.files import INDEX_HTML
from attnviz.metadata import COMPLETE, FAILED
from attnviz.outputs import write_json_atomic
from attnviz.study.index import INCOMPLETE, STUDY_JSON, outcome
from attnviz.study.page import write_page

SUMMED = ("model_loads", "load_s", "generate_s", "render_s", "batches")


def job_indexes(sweep_dir: Path) -> list[Path]:
    """Every job's study.json below ``sweep_dir`` (not the merged one, not inside hidden folders or samples)."""
    found = []
    for path in sorted(sweep_dir.rglob(STUDY_JSON)):
        parts = path.relative_to(sweep_dir).parts
        if len(parts) > 1 and not any(p.startswith(".") or p == "samples" for p in parts[:-1]):
            found.append(path)
    return found


def merge(sweep_dir: Path, indexes: list[Path], expected_jobs: int | None = None) -> dict[str, Any]:
    """The merged index of ``indexes`` (study.json files of the jobs); a job expected but without one counts
    as incomplete."""
    jobs, samples = [], []
    totals: Counter = Counter()
    for path in indexes:
        data = json.loads(path.read_text(encoding="utf-8"))
        rel = path.parent.relative_to(sweep_dir).as_posix()
        jobs.append({"dir": rel, "status": data["status"], "shard": data.get("shard"),
                     "n_samples": data["n_samples"], "n_complete": data["n_complete"], "n_failed": data["n_failed"],
                     "wall_s": data.get("wall_s"), "slurm_job_id": data.get("slurm_job_id")})
        samples += [{**entry, "dir": f"{rel}/{entry['dir']}", "job": rel} for entry in data["samples"]]
        totals.update({key: data.get(key) or 0 for key in SUMMED})
    counts = Counter(entry["status"] for entry in samples)
    missing = max(0, (expected_jobs or 0) - len(jobs))
    status = outcome(counts, len(samples))
    if status == COMPLETE and (missing or any(job["status"] != COMPLETE for job in jobs)):
        status = INCOMPLETE
    return {
        "status": status, "sweep_dir": str(sweep_dir), "n_jobs": len(jobs), "n_jobs_missing": missing,
        "num_shards": len(jobs), "n_samples": len(samples), "n_complete": counts.get(COMPLETE, 0),
        "n_failed": counts.get(FAILED, 0),
        "n_pending": len(samples) - counts.get(COMPLETE, 0) - counts.get(FAILED, 0),
        **{key: round(totals[key], 3) for key in SUMMED},
        "wall_s": max((job["wall_s"] or 0 for job in jobs), default=0),
        "files": {"index": INDEX_HTML}, "jobs": jobs, "samples": samples,
    }


def write_merged(sweep_dir: str | Path, expected_jobs: int | None = None) -> dict[str, Any]:
    sweep_dir = Path(sweep_dir)
    data = merge(sweep_dir, job_indexes(sweep_dir), expected_jobs)
    write_json_atomic(sweep_dir / STUDY_JSON, data)
    write_page(data, sweep_dir / INDEX_HTML)
    return data
