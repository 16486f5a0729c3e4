"""A sweep's jobs -> summary.json: params, status, paths, timings, attention share per token kind.

Model-free and light: no torch, transformers or matplotlib (the plot imports it when it draws), so
``python -m attnviz.sweep`` starts fast on a login node.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from attnviz.analysis import mean_kind_shares
from attnviz.files import INDEX_HTML, METADATA_NAME, SUMMARY_JSON, SWEEP_SHARE_PLOT, TRACE_DIR, VIEWER_NAME
from attnviz.metadata import COMPLETE, FAILED, RunMetadata
from attnviz.outputs import write_json_atomic
from attnviz.sweep.overrides import from_config, uses_basic_sweeper
from attnviz.trace import load_trace

log = logging.getLogger(__name__)
INCOMPLETE, NOT_STARTED, UNKNOWN = "incomplete", "not started", "unknown"  # the statuses a run does not write


def expected_jobs(config: DictConfig) -> list[list[str]] | None:
    """Every job's overrides as Hydra's basic sweeper expands them; None for other sweepers (their jobs are
    chosen while they run) and for sweeps that cannot be listed."""
    if not uses_basic_sweeper(config):
        return None
    return from_config(config).jobs()


def job_dirs(sweep_dir: Path) -> dict[tuple[str, ...], Path]:
    """Run directories of a sweep (each has .hydra/overrides.yaml), keyed by their sorted overrides."""
    found = {}
    for path in sorted(sweep_dir.rglob(".hydra/overrides.yaml")):
        run_dir = path.parent.parent
        if any(part.startswith(".") for part in run_dir.relative_to(sweep_dir).parts):
            continue  # the trace cache, submitit's folders
        found[tuple(sorted(OmegaConf.to_container(OmegaConf.load(path))))] = run_dir
    return found


def job_entry(sweep_dir: Path, overrides: Iterable[str], run_dir: Path | None) -> dict[str, Any]:
    """One job's summary entry: its params and directory, then what its metadata.json says."""
    overrides = sorted(overrides)
    entry: dict[str, Any] = {
        "params": dict(o.split("=", 1) for o in overrides if "=" in o),
        "overrides": overrides,
        "dir": None if run_dir is None else str(run_dir.relative_to(sweep_dir)),
        "status": NOT_STARTED,
    }
    if run_dir is None:
        return entry
    if not (run_dir / METADATA_NAME).is_file():
        return {**entry, "status": INCOMPLETE, "error": f"no {METADATA_NAME}: the job stopped before it finished"}
    try:
        meta = RunMetadata.load(run_dir)
    except (OSError, ValueError, TypeError, KeyError) as err:  # TypeError, KeyError: a field of the wrong shape
        return {**entry, "status": UNKNOWN, "error": f"unreadable {METADATA_NAME}: {err}"}
    entry.update(
        status=meta.status, error=meta.error, slurm_job_id=meta.slurm_job_id, timings=meta.timings,
        layer=meta.layer, sample_id=meta.sample_id or None,
        generated=(meta.trace_cache or {"generated": True}).get("generated", True),
    )
    if meta.complete:
        entry.update(_outputs(sweep_dir, run_dir, meta))
    return entry


def _outputs(sweep_dir: Path, run_dir: Path, meta: RunMetadata) -> dict[str, Any]:
    """A complete run's files (paths relative to the sweep directory) and its attention share."""
    rel = run_dir.relative_to(sweep_dir)

    def present(name: str | None) -> str | None:
        return str(rel / name) if name and (run_dir / name).is_file() else None

    trace_dir = meta.files.get("trace", TRACE_DIR)
    files = {
        "video": present(meta.files.get("video")),
        "viewer": present(meta.files.get("viewer", VIEWER_NAME)),
        "poster": present(meta.files.get("poster")),
        "metadata": str(rel / METADATA_NAME),
        "trace": str(rel / trace_dir),
    }
    try:
        share = mean_kind_shares(load_trace(run_dir / trace_dir), int(meta.layer))  # type: ignore[arg-type]
    except (OSError, KeyError, ValueError, TypeError) as err:  # TypeError: no layer recorded
        log.warning("no attention share for %s: %s", run_dir, err)
        share = None
    return {"files": files, "attention_share": share, "generated_text": meta.generated_text}


def collect(sweep_dir: Path, expected: list[list[str]] | None = None) -> list[dict[str, Any]]:
    """One entry per job of this sweep (one that never started too); without ``expected``, every run directory.

    Run directories of an earlier sweep into the same folder that this one does not list are left out.
    """
    found = job_dirs(sweep_dir)
    keys = list(found) if expected is None else [tuple(sorted(job)) for job in expected]
    return [job_entry(sweep_dir, key, found.get(key)) for key in keys]


def summarise(sweep_dir: Path, jobs: list[dict[str, Any]], wall_s: float | None = None) -> dict[str, Any]:
    """``n_failed``: jobs that recorded a failure; ``n_incomplete``: the others that did not finish (stopped
    without metadata, never started, unreadable metadata)."""
    counts = Counter(job["status"] for job in jobs)
    n_complete, n_failed = counts.get(COMPLETE, 0), counts.get(FAILED, 0)
    return {
        "sweep_dir": str(sweep_dir),
        "n_jobs": len(jobs),
        "n_complete": n_complete,
        "n_failed": n_failed,
        "n_incomplete": len(jobs) - n_complete - n_failed,
        "status_counts": dict(counts),
        "generate_calls": sum(1 for job in jobs if job["status"] == COMPLETE and job.get("generated")),
        "wall_s": wall_s,
        "files": {"index": INDEX_HTML, "plot": SWEEP_SHARE_PLOT},
        "jobs": jobs,
    }


def all_complete(summary: dict[str, Any]) -> bool:
    return summary["n_complete"] == summary["n_jobs"]


def outcome(summary: dict[str, Any]) -> str:
    """One line for the log and the page: how many runs completed, and how the others ended."""
    line = f"{summary['n_complete']} of {summary['n_jobs']} runs complete"
    if all_complete(summary):
        return line
    how = ", ".join(
        f"{n} {status}" for status, n in sorted(summary["status_counts"].items()) if status not in (COMPLETE, FAILED)
    )
    line += f"; {summary['n_failed']} failed, {summary['n_incomplete']} did not finish"
    return line + (f" ({how})" if how else "")


def unfinished(summary: dict[str, Any]) -> list[str]:
    """One line per job that did not complete: where it is, how it ended, why."""
    return [
        f"{job['dir'] or ' '.join(job['overrides'])}: {job['status']}: {job.get('error')}"
        for job in summary["jobs"] if job["status"] != COMPLETE
    ]


def write_summary(
    sweep_dir: str | Path, expected: list[list[str]] | None = None, wall_s: float | None = None
) -> dict[str, Any]:
    """Write summary.json, the image-share plot and index.html into the sweep directory; returns the summary."""
    from attnviz.sweep.page import write_index
    from attnviz.sweep.plot import plot_image_share

    sweep_dir = Path(sweep_dir)
    summary = summarise(sweep_dir, collect(sweep_dir, expected), wall_s)
    if plot_image_share(summary["jobs"], sweep_dir / SWEEP_SHARE_PLOT) is None:
        summary["files"]["plot"] = None
    write_json_atomic(sweep_dir / SUMMARY_JSON, summary)
    write_index(summary, sweep_dir / INDEX_HTML)
    return summary
