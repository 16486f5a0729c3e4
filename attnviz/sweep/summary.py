"""A sweep's jobs -> summary.json: params, status, paths, timings, attention share per token kind."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from attnviz.outputs import write_json_atomic
from attnviz.sweep.layout import INDEX_HTML, SHARE_PLOT, SUMMARY_JSON, VIEWER_HTML
from attnviz.trace import TOKEN_KINDS, Trace, load_trace

log = logging.getLogger(__name__)
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def attention_share(trace: Trace, layer: int) -> dict[str, float]:
    """Share of each row's attention on image / text / special tokens at ``layer``, averaged over the steps."""
    kinds = np.asarray(trace.token_kinds)  # (S,)
    per_step = np.zeros((trace.n_steps, len(TOKEN_KINDS)))  # (T, 3)
    for step in range(trace.n_steps):
        row = trace.row(layer, step)  # (prompt_len + step,) sums to 1 up to the storage precision
        row_kinds = kinds[: row.size]
        per_step[step] = [row[row_kinds == kind].sum() for kind in TOKEN_KINDS]
        per_step[step] /= max(per_step[step].sum(), 1e-12)
    return {kind: float(v) for kind, v in zip(TOKEN_KINDS, per_step.mean(axis=0), strict=True)}


def expected_jobs(config: DictConfig) -> list[list[str]] | None:
    """Every job's overrides as Hydra's basic sweeper expands them; None for other sweepers."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if OmegaConf.select(config, "hydra.sweeper._target_") != BASIC_SWEEPER:
        return None
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    arguments = [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)
    overrides = OverridesParser.create().parse_overrides(arguments)
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


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
    overrides = sorted(overrides)
    entry: dict[str, Any] = {
        "params": dict(o.split("=", 1) for o in overrides if "=" in o),
        "overrides": overrides,
        "dir": None if run_dir is None else str(run_dir.relative_to(sweep_dir)),
        "status": "not started",
    }
    meta_path = None if run_dir is None else run_dir / "metadata.json"
    if meta_path is None or not meta_path.is_file():
        if run_dir is not None:
            entry.update(status="incomplete", error="no metadata.json: the job stopped before it finished")
        return entry
    meta = json.loads(meta_path.read_text())
    entry.update(
        status=meta.get("status", "unknown"), error=meta.get("error"), slurm_job_id=meta.get("slurm_job_id"),
        timings=meta.get("timings", {}), layer=meta.get("layer"), sample_id=(meta.get("sample") or {}).get("id"),
        generated=(meta.get("trace_cache") or {"generated": True}).get("generated", True),
    )
    if entry["status"] == "complete":
        entry.update(_outputs(sweep_dir, run_dir, meta))
    return entry


def _outputs(sweep_dir: Path, run_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    rel = run_dir.relative_to(sweep_dir)

    def present(name: str | None) -> str | None:
        return str(rel / name) if name and (run_dir / name).is_file() else None

    files = {
        "video": str(rel / meta["files"]["video"]),
        "viewer": present(meta["files"].get("viewer", VIEWER_HTML)),
        "poster": present(meta["files"].get("poster")),
        "metadata": str(rel / "metadata.json"),
        "trace": str(rel / "trace"),
    }
    try:
        share = attention_share(load_trace(run_dir / "trace"), int(meta["layer"]))
    except (OSError, KeyError, ValueError) as err:
        log.warning("no attention share for %s: %s", run_dir, err)
        share = None
    return {"files": files, "attention_share": share, "generated_text": meta.get("generated_text")}


def collect(sweep_dir: Path, expected: list[list[str]] | None = None) -> list[dict[str, Any]]:
    """One entry per job of this sweep (one that never started too); without ``expected``, every run directory.

    Run directories of an earlier sweep into the same folder that this one does not list are left out.
    """
    found = job_dirs(sweep_dir)
    keys = list(found) if expected is None else [tuple(sorted(job)) for job in expected]
    return [job_entry(sweep_dir, key, found.get(key)) for key in keys]


def summarise(sweep_dir: Path, jobs: list[dict[str, Any]], wall_s: float | None = None) -> dict[str, Any]:
    counts = Counter(job["status"] for job in jobs)
    return {
        "sweep_dir": str(sweep_dir),
        "n_jobs": len(jobs),
        "n_complete": counts.get("complete", 0),
        "n_failed": len(jobs) - counts.get("complete", 0),
        "status_counts": dict(counts),
        "generate_calls": sum(1 for job in jobs if job["status"] == "complete" and job.get("generated")),
        "wall_s": wall_s,
        "files": {"index": INDEX_HTML, "plot": SHARE_PLOT},
        "jobs": jobs,
    }


def write_summary(
    sweep_dir: str | Path, expected: list[list[str]] | None = None, wall_s: float | None = None
) -> dict[str, Any]:
    """Write summary.json, the image-share plot and index.html into the sweep directory; returns the summary."""
    from attnviz.sweep.page import write_index
    from attnviz.sweep.plot import plot_image_share

    sweep_dir = Path(sweep_dir)
    summary = summarise(sweep_dir, collect(sweep_dir, expected), wall_s)
    if plot_image_share(summary["jobs"], sweep_dir / SHARE_PLOT) is None:
        summary["files"]["plot"] = None
    write_json_atomic(sweep_dir / SUMMARY_JSON, summary)
    write_index(summary, sweep_dir / INDEX_HTML)
    return summary
