"""A folder of runs -> ``metrics.csv``, the report's plots (PNG) and ``report.html``, written into that folder.

Runs stream through once: each metrics.json is read, its rows go straight into the CSV, and the study keeps a few
floats per sample for the plots and one table row. Files are written under a temp name, then renamed; the page
last, since it links the others.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from attnviz.errors import AttnvizError
from attnviz.report.aggregate import Series, Study, model_order, summarise
from attnviz.report.collect import (
    CSV_COLUMNS,
    METRICS_NAME,
    UnreadableMetrics,
    csv_lines,
    find_runs,
    load_metadata,
    read_metrics,
    run_links,
)
from attnviz.report.page import REPORT_NAME, page_data, write_report_page
from attnviz.report.stats import RESAMPLES, SEED
from attnviz.trace_store import atomic_write

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


def _plots(series: Series, models: list[str]) -> dict[str, tuple[str, Callable[[], bytes]]]:
    """The plots there is something to draw for: id -> (caption, draw)."""
    from attnviz.report import plots

    out: dict[str, tuple[str, Callable[[], bytes]]] = {}
    if series.image_share:
        out["image_share"] = (
            'Image share per layer (segment "all"), correct vs incorrect answers ("unknown" for a model whose '
            "runs do not judge correctness); n: samples in the line.",
            lambda: plots.image_share_png(series.image_share, models))
    if series.position:
        layers = ", ".join(map(str, series.position_layers))
        out["position"] = (
            f"Image share in each tenth of the answer (segments pos0…pos9, by relative position) at layers {layers} "
            "(choose with --layers).",
            lambda: plots.position_png(series.position, series.position_layers, models))
    if series.gt_share or series.hit:
        out["ground_truth"] = (
            "Ground-truth share (gt_share) and hit rate (the fraction of steps whose strongest image cell lies "
            "inside the region) per layer, over the samples that have a region.",
            lambda: plots.ground_truth_png(series.gt_share, series.hit, models))
    return out


def _write_plots(root: Path, series: Series, models: list[str]) -> list[dict[str, str]]:
    """Each plot as a PNG beside the page and inline in it; a plot with nothing to draw leaves no old file."""
    titles = {"image_share": "image share per layer", "position": "image share along the answer",
              "ground_truth": "ground-truth share and hit rate per layer"}
    drawn = []
    todo = _plots(series, models)
    for key, name in PLOT_NAMES.items():
        if key not in todo:
            (root / name).unlink(missing_ok=True)  # an earlier report's plot no longer describes this folder
            continue
        caption, draw = todo[key]
        png = draw()
        atomic_write(root / name, lambda f, png=png: f.write(png))
        drawn.append({"id": key, "title": titles[key], "caption": caption, "file": f"./{name}",
                      "png": base64.b64encode(png).decode("ascii")})
    return drawn


def _table_note(options: Options) -> str:
    where = (f"at layer {options.layer} (--layer)" if options.layer is not None else
             "at each run's rendered layer (metadata.json; without one, its deepest layer)")
    return (f"One row per run, {where}; answer tokens: the answer's length. Click a column's header to sort by it "
            "(again to reverse).")


def write_report(root: str | Path, options: Options | None = None) -> Written:
    """Write metrics.csv, the plots and report.html into ``root``; NoMetrics when there is nothing to report."""
    root, options = Path(root), options or Options()
    if not root.is_dir():
        raise NoMetrics(f"{root} is not a folder: pass a study, a multirun folder or a run directory")
    runs = list(find_runs(root))
    if not runs:
        raise NoMetrics(f"no {METRICS_NAME} under {root} (hidden folders are not searched): run attnviz with "
                        "metrics first, or pass the folder that holds the runs")
    study = Study(table_layer=options.layer, position_layers=options.layers)
    atomic_write(root / CSV_NAME, lambda f: _stream(root, runs, study, f))
    series = summarise(study, resamples=options.resamples, seed=options.seed)
    plots = _write_plots(root, series, model_order(study))
    title = f"attnviz report: {root.resolve().name}"
    data = page_data(title, study, series, plots, csv=f"./{CSV_NAME}", table_note=_table_note(options))
    page = write_report_page(data, root / REPORT_NAME)
    files = [root / CSV_NAME, *(root / p["file"][2:] for p in plots), page]
    return Written(study, series, files)
