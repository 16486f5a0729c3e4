"""A folder of runs -> ``metrics.csv``, the report's plots (PNG) and ``report.html``, written into that folder; where
it holds comparison jobs, also ``compare.csv`` and the comparison section (:mod:`attnviz.report.compare_out`).

Runs stream through once: each metrics.json is read, its rows go straight into the CSV, and the study keeps a few
floats per sample for the plots and one table row. Files are written under a temp name, then renamed; the page
last, since it links the others.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from attnviz.errors import AttnvizError
from attnviz.report.aggregate import Series, Study, model_order, summarise
from attnviz.report.collect import (
    COMPARE_CSV,
    COMPARE_NAME,
    COMPARE_PLOTS,
    CSV_COLUMNS,
    METRICS_NAME,
    UnreadableMetrics,
    csv_lines,
    load_metadata,
    read_metrics,
    run_links,
    walk,
)
from attnviz.report.page import REPORT_NAME, SKIPPED_SHOWN, page_data, write_report_page
from attnviz.report.stats import RESAMPLES, SEED
from attnviz.trace_store import atomic_write

if TYPE_CHECKING:
    from attnviz.report.compare_stats import Comparison

log = logging.getLogger(__name__)
CSV_NAME = "metrics.csv"
PLOT_NAMES = {"image_share": "report_image_share.png", "position": "report_position.png",
              "ground_truth": "report_ground_truth.png"}


class NoMetrics(AttnvizError):
    """Nothing to report: no metrics.json under the folder, or none that could be read."""


@dataclass(frozen=True)
class Options:
    layers: tuple[int, ...] | None = None  # the position plot's layers; None: a few spread over the depth
    layer: int | None = None  # the table's layer; None: each run's rendered layer
    resamples: int = RESAMPLES
    seed: int = SEED


@dataclass(frozen=True)
class Written:
    study: Study
    series: Series
    files: list[Path]
    comparisons: list[Comparison] = field(default_factory=list)
    compare_skipped: int = 0  # per-sample compare.json files that could not be read


@dataclass(frozen=True)
class Plot:
    id: str
    title: str
    caption: str
    file: str  # its PNG's name in the report's folder
    draw: Callable[[], bytes]


def _stream(root: Path, runs: list[Path], study: Study, f: BinaryIO) -> None:
    """Read each run, write its rows to the CSV ``f``, keep what the study needs; skip unreadable ones."""
    # a lone surrogate (a broken token in an id) is written as its escape, not a crash
    text = io.TextIOWrapper(f, encoding="utf-8", errors="backslashreplace", newline="")
    text.write(",".join(CSV_COLUMNS) + "\n")
    for run_dir in runs:
        meta = load_metadata(run_dir)
        try:
            run = read_metrics(root, run_dir, meta)
        except UnreadableMetrics as err:
            path = (run_dir / METRICS_NAME).relative_to(root).as_posix()
            log.warning("skipped %s: %s", run_dir / METRICS_NAME, err)
            study.skipped.append((path, str(err)))
            continue
        if study.add(run, run_links(root, run_dir, meta)):
            text.write(csv_lines(run))
    if not study.table:  # raised inside the write: the half-made CSV is removed, the old one kept
        raise NoMetrics(f"none of the {len(runs)} {METRICS_NAME} under {root} could be read")
    text.flush()
    text.detach()  # the caller closes f


def _plots(series: Series, models: list[str]) -> list[Plot]:
    """The plots there is something to draw for."""
    from attnviz.report import plots

    out = []
    if series.image_share:
        out.append(Plot(
            "image_share", "image share per layer",
            'Image share per layer (segment "all"), correct vs incorrect answers ("unknown" for a model whose '
            "runs do not judge correctness); n: samples in the line.",
            PLOT_NAMES["image_share"], lambda: plots.image_share_png(series.image_share, models)))
    if series.position:
        layers = ", ".join(map(str, series.position_layers))
        out.append(Plot(
            "position", "image share along the answer",
            f"Image share in each tenth of the answer (segments pos0…pos9, by relative position) at layers {layers} "
            "(choose with --layers).",
            PLOT_NAMES["position"], lambda: plots.position_png(series.position, series.position_layers, models)))
    if series.gt_share or series.hit:
        out.append(Plot(
            "ground_truth", "ground-truth share and hit rate per layer",
            "Ground-truth share (gt_share) and hit rate (the fraction of steps whose strongest image cell lies "
            "inside the region) per layer, over the samples that have a region.",
            PLOT_NAMES["ground_truth"], lambda: plots.ground_truth_png(series.gt_share, series.hit, models)))
    return out


def _comparisons(root: Path, compares: list[Path], options: Options) -> tuple[list[Comparison], list, list]:
    """The comparison jobs among ``compares`` (compare.json files): (their comparisons, the files skipped as (path,
    why), each one's plots); compare.csv written, or an earlier one removed. Its code is imported only here."""
    if not compares:
        (root / COMPARE_CSV).unlink(missing_ok=True)
        return [], [], []
    from attnviz.report import compare_out

    comparisons, skipped = compare_out.collect(root, compares)
    if comparisons:
        atomic_write(root / COMPARE_CSV, lambda f: compare_out.write_csv(comparisons, f, resamples=options.resamples,
                                                                         seed=options.seed))
    else:
        (root / COMPARE_CSV).unlink(missing_ok=True)
    titles = {"levels": "models side by side per layer", "diff": "paired difference per layer"}
    jobs = compare_out.plot_jobs(comparisons, resamples=options.resamples, seed=options.seed)
    plots = [[Plot(f"compare{i}_{key}", titles[key], caption, compare_out.plot_names(i)[key], draw)
              for key, (caption, draw) in todo.items()] for i, todo in enumerate(jobs)]
    return comparisons, skipped, plots


def _sections(comparisons: list[Comparison], plots: list[list[Plot]], drawn: dict[str, dict]) -> list[dict]:
    if not comparisons:
        return []
    from attnviz.report import compare_out

    return [compare_out.section(c, [drawn[p.file] for p in group]) for c, group in zip(comparisons, plots,
                                                                                         strict=True)]


def _write_plots(root: Path, plots: list[Plot], stale: list[Path]) -> dict[str, dict[str, str]]:
    """Each plot drawn as a PNG beside the page, and inline in it: file name -> the page's entry. ``stale``: earlier
    reports' plots, removed unless drawn again (they no longer describe this folder)."""
    drawn = {}
    for plot in plots:
        png = plot.draw()
        atomic_write(root / plot.file, lambda f, png=png: f.write(png))
        drawn[plot.file] = {"id": plot.id, "title": plot.title, "caption": plot.caption, "file": f"./{plot.file}",
                            "png": base64.b64encode(png).decode("ascii")}
    for path in stale:
        if path.name not in drawn:
            path.unlink(missing_ok=True)
    return drawn


def _table_note(options: Options) -> str:
    where = (f"at layer {options.layer} (--layer)" if options.layer is not None else
             "at each run's rendered layer (metadata.json; without one, its deepest layer)")
    return (f"One row per run, {where}; answer tokens: the answer's length. Click a column's header to sort by it "
            "(again to reverse).")


def _scan(root: Path) -> tuple[list[Path], list[Path]]:
    """(run folders, compare.json files) under ``root``, in one walk."""
    runs, compares = [], []
    for here, files in walk(root):
        if METRICS_NAME in files:
            runs.append(here)
        if COMPARE_NAME in files:
            compares.append(here / COMPARE_NAME)
    return runs, compares


def write_report(root: str | Path, options: Options | None = None) -> Written:
    """Write metrics.csv, the plots and report.html into ``root`` (and compare.csv with a comparison section where
    it holds comparison jobs); NoMetrics when there is nothing to report."""
    root, options = Path(root), options or Options()
    if not root.is_dir():
        raise NoMetrics(f"{root} is not a folder: pass a study, a multirun folder or a run directory")
    runs, compares = _scan(root)
    if not runs:
        raise NoMetrics(f"no {METRICS_NAME} under {root} (hidden folders are not searched): run attnviz with "
                        "metrics first, or pass the folder that holds the runs")
    study = Study(table_layer=options.layer, position_layers=options.layers)
    atomic_write(root / CSV_NAME, lambda f: _stream(root, runs, study, f))
    series = summarise(study, resamples=options.resamples, seed=options.seed)
    comparisons, skipped, compared = _comparisons(root, compares, options)
    main = _plots(series, model_order(study))
    stale = [root / name for name in PLOT_NAMES.values()] + sorted(root.glob(COMPARE_PLOTS))
    drawn = _write_plots(root, [*main, *(p for group in compared for p in group)], stale)
    sections = _sections(comparisons, compared, drawn)
    title = f"attnviz report: {root.resolve().name}"
    data = page_data(title, study, series, [drawn[p.file] for p in main], csv=f"./{CSV_NAME}",
                     table_note=_table_note(options))
    if sections or skipped:
        data["comparison"] = {"sections": sections, "skipped": {
            "count": len(skipped), "shown": [{"path": p, "why": w} for p, w in skipped[:SKIPPED_SHOWN]]}}
    page = write_report_page(data, root / REPORT_NAME)
    files = [root / CSV_NAME, *(root / name for name in drawn), page]
    if comparisons:
        files.insert(1, root / COMPARE_CSV)
    return Written(study, series, files, comparisons, len(skipped))
