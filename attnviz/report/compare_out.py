"""The report's comparison section: every sample's compare.json under the folder pooled per comparison job
(:mod:`attnviz.report.compare_read`), then ``compare.csv`` (tidy: one row per reference, model, layer, segment and
metric), two plots per comparison and the page's data (the plots, the samples that changed most).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

from attnviz.report.collect import COMPARE_CSV, csv_field
from attnviz.report.compare_read import (
    JOB_KIND,
    JobKey,
    Jobs,
    UnreadableCompare,
    belongs,
    parse_sample,
    read_json,
    run_metrics,
)
from attnviz.report.compare_stats import CHANGED_SHOWN, Comparison, RunTable, csv_rows, plot_lines
from attnviz.report.stats import RESAMPLES, SEED

log = logging.getLogger(__name__)
COMPARE_CSV_COLUMNS = ("reference", "model", "layer", "model_layer", "segment", "metric", "n", "mean_reference",
                       "mean_model", "diff", "diff_lo", "diff_hi")
__all__ = ["COMPARE_CSV", "COMPARE_CSV_COLUMNS", "collect", "plot_jobs", "section", "write_csv"]


def _clashes(comparisons: list[Comparison]) -> list[Comparison]:
    """One comparison per (reference, model) label pair, so compare.csv's rows stay unambiguous: of two that
    share one (other checkpoints or answers under the same labels), the one with more samples."""
    kept, pairs = [], set()
    for comp in sorted(comparisons, key=lambda c: -c.samples):
        mine = {(comp.reference, label) for label in comp.job.key.labels[1:]}
        if mine & pairs:
            log.warning("comparison of %s in %s left out: the same labels as a larger comparison (other "
                        "checkpoints or answers); report it on its own", ", ".join(comp.job.key.labels),
                        ", ".join(sorted(comp.folders)))
            continue
        pairs |= mine
        kept.append(comp)
    return kept


def collect(root: Path, paths: list[Path]) -> tuple[list[Comparison], list[tuple[str, str]]]:
    """Every per-sample compare.json of ``paths`` (sorted), each with its runs' metrics.json, pooled per job:
    (the comparisons, the skipped files as (path, why))."""
    jobs, groups, skipped = Jobs(root), {}, []
    for path in paths:
        try:
            data = read_json(path)
            if isinstance(data, dict) and data.get("kind") == JOB_KIND:
                continue  # a job's record: read with its samples
            sample = parse_sample(data, path.parent)
            job = jobs.of(sample)
            if not belongs(sample, job):
                raise UnreadableCompare(f"compares {list(sample.labels)}, its job {list(job.key.labels)}")
        except UnreadableCompare as err:
            log.warning("skipped %s: %s", path, err)
            skipped.append((path.relative_to(root).as_posix(), str(err)))
            continue
        runs = {label: RunTable(run_metrics(folder)) for label, folder in sample.run_dirs.items()}
        groups.setdefault(job.key, Comparison(job)).add(root, job, sample, runs)
    return _clashes([c for c in groups.values() if c.pairwise]), skipped


def _cell(value: Any) -> str:
    if value is None or value != value:  # no value, NaN
        return ""
    return csv_field(value) if isinstance(value, str) else repr(value)


def write_csv(comparisons: list[Comparison], f: BinaryIO, *, resamples: int = RESAMPLES, seed: int = SEED) -> None:
    text = io.TextIOWrapper(f, encoding="utf-8", errors="backslashreplace", newline="")
    text.write(",".join(COMPARE_CSV_COLUMNS) + "\n")
    for comp in comparisons:
        for row in csv_rows(comp, resamples=resamples, seed=seed):
            text.write(",".join(_cell(row[name]) for name in COMPARE_CSV_COLUMNS) + "\n")
    text.flush()
    text.detach()  # the caller closes f


def plot_names(index: int) -> dict[str, str]:
    suffix = "" if index == 0 else f"_{index + 1}"
    return {"levels": f"report_compare_levels{suffix}.png", "diff": f"report_compare_diff{suffix}.png"}


def plot_jobs(comparisons: list[Comparison], *, resamples: int = RESAMPLES, seed: int = SEED
              ) -> list[dict[str, tuple[str, Callable[[], bytes]]]]:
    """Per comparison: plot id -> (caption, the call that draws it)."""
    from attnviz.report import plots

    out = []
    for comp in comparisons:
        levels, diffs = plot_lines(comp, resamples=resamples, seed=seed)
        labels = list(comp.job.key.labels)
        where = ('image share and image entropy over the whole answer (segment "all"); ground-truth share and hit '
                 'rate over the coordinate tokens (segment "coords", else "all")')
        out.append({
            "levels": (f"Each model's mean per layer of the reference (a model's own layer matched to it), over the "
                       f"compared samples: {where}; n: samples.",
                       partial(plots.compare_levels_png, levels, labels)),
            "diff": (f"Paired difference, model − {comp.reference}: per sample the model's value minus the "
                     f"reference's at the matched layer, averaged over samples ({where}); an interval that excludes "
                     "0 marks a difference the samples agree on.",
                     partial(plots.compare_diff_png, diffs, labels)),
        })
    return out


def table(comp: Comparison) -> dict[str, Any]:
    by, rows = comp.changed_rows()
    what = ("the Jensen-Shannon divergence of the image-cell distributions (bits, mean over the answer's steps)" if
            by == "js" else 'the size of the image share\'s change on segment "answer"')
    note = (f"The {min(len(comp.changed), CHANGED_SHOWN)} of {len(comp.changed)} (sample, model) pairs whose "
            f"attention changed most, by {what} at the reference's layer; deltas: model − reference on segment "
            "\"answer\" (\"all\" where the answer has no <answer> span). Click a column's header to sort by it.")
    return {"by": by, "rows": rows, "total": len(comp.changed), "note": note}


def section(comp: Comparison, plots: list[dict[str, str]]) -> dict[str, Any]:
    """One comparison's part of the page's data."""
    key: JobKey = comp.job.key
    return {
        "reference": key.reference, "models": list(key.labels), "answer": key.answer,
        "samples": comp.samples, "duplicates": comp.duplicates,
        "folders": sorted(comp.folders), "csv": f"./{COMPARE_CSV}",
        "layer_match": {m: p.layer_match for m, p in comp.pairwise.items()},
        "mismatched": {m: p.mismatched for m, p in comp.pairwise.items() if p.mismatched},
        "plots": plots, "table": table(comp),
    }
