"""What the report keeps of each run while it streams through a study: a few floats per sample for the plots and
one table row, never the run's rows. Then the plotted lines: means over samples with bootstrap intervals.
"""

from __future__ import annotations

import re
from array import array
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attnviz.report.collect import ALL, COORDS, POSITIONS, Links, RunMetrics
from attnviz.report.stats import RESAMPLES, SEED, bootstrap_means

CORRECT, INCORRECT, UNKNOWN = "correct", "incorrect", "unknown"
GROUPS = (CORRECT, INCORRECT, UNKNOWN)
POSITION_BIN = {name: b for b, name in enumerate(POSITIONS)}
DEFAULT_POSITION_LAYERS = 4  # layers spread over the depth in the position plot, when none are chosen


def natural_key(text: str) -> list[tuple[int, int, str]]:
    """Sort key that puts step_200 before step_1000: checkpoints in training order."""
    parts = re.split(r"([0-9]+)", text)  # odd places: the numbers (ASCII digits only: int() takes them all)
    return [(0, int(p), "") if i % 2 else (1, 0, p) for i, p in enumerate(parts)]


def model_order(study: Study) -> list[str]:
    return sorted(study.groups, key=natural_key)


def ground_segment(segments: Iterable[str]) -> str:
    """Where grounding is judged: the tokens that write coordinates (the answer names a place), when a run has any;
    else the whole answer."""
    return COORDS if COORDS in segments else ALL


def group_of(correct: bool | None) -> str:
    return UNKNOWN if correct is None else CORRECT if correct else INCORRECT


class Columns:
    """Per-sample values of one plotted line, column by column (a column: a layer, or a layer's position bin), in
    flat compact arrays (16 bytes a value), whatever else the run holds."""

    def __init__(self) -> None:
        self.n = 0
        self._ids: dict[Hashable, int] = {}
        self._sample, self._col, self._val = array("i"), array("i"), array("d")

    def add(self, keys: Sequence[Hashable], values: np.ndarray) -> None:
        """One sample's ``values`` at ``keys`` (NaN: no value, left out); a sample with no value is not counted."""
        keep = ~np.isnan(values)
        if not keep.any():
            return
        ids = [self._ids.setdefault(key, len(self._ids)) for key, ok in zip(keys, keep.tolist(), strict=True) if ok]
        self._col.extend(ids)
        self._val.frombytes(np.ascontiguousarray(values[keep], dtype=np.float64).tobytes())
        self._sample.frombytes(np.full(len(ids), self.n, dtype=np.int32).tobytes())
        self.n += 1

    def columns(self) -> list[Hashable]:
        return sorted(self._ids)

    def matrix(self, columns: list[Hashable]) -> np.ndarray:
        """samples × columns, NaN where a sample has no value."""
        where = np.full(len(self._ids) + 1, len(columns), dtype=np.int64)  # unwanted columns: a spare one
        for j, key in enumerate(columns):
            if key in self._ids:
                where[self._ids[key]] = j
        out = np.full((self.n, len(columns) + 1), np.nan)
        out[np.frombuffer(self._sample, dtype=np.int32), where[np.frombuffer(self._col, dtype=np.int32)]] = (
            np.frombuffer(self._val, dtype=np.float64))
        return out[:, : len(columns)]


@dataclass(frozen=True)
class Line:
    """One plotted line: a model (and a group, or a layer) over ``x``; NaN where no sample has a value."""

    model: str
    label: str
    x: list[int]
    mean: list[float]
    low: list[float]
    high: list[float]
    n: list[int]  # samples with a value, per point
    samples: int  # samples in the line


@dataclass
class Study:
    """Everything the report keeps while it streams runs; ``add`` one run at a time."""

    table_layer: int | None = None  # --layer; None: each run's rendered layer
    position_layers: tuple[int, ...] | None = None  # --layers; None: all kept, a few chosen at the end
    share: dict[tuple[str, str], Columns] = field(default_factory=lambda: defaultdict(Columns))
    position: dict[str, Columns] = field(default_factory=lambda: defaultdict(Columns))
    ground: dict[str, Columns] = field(default_factory=lambda: defaultdict(Columns))
    groups: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    table: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    duplicates: int = 0
    seen: set[str] = field(default_factory=set)

    @property
    def samples(self) -> int:
        return sum(sum(c.values()) for c in self.groups.values())

    def add(self, run: RunMetrics, links: Links) -> bool:
        """Keep a run's table row and, unless an earlier run measured exactly the same, its plotted values.
        Returns whether its rows count (belong in the CSV)."""
        self.table.append(table_row(run, links, self.table_layer))
        key = run.fingerprint()
        if key in self.seen:
            self.duplicates += 1
            return False
        self.seen.add(key)
        group = group_of(run.correct)
        self.groups[run.model][group] += 1
        whole = [i for i, seg in enumerate(run.segments) if seg == ALL]
        layers = [run.layers[i] for i in whole]
        self.share[run.model, group].add(layers, run.column("image_share")[whole])
        where = ground_segment(run.segments)
        chosen = [i for i, seg in enumerate(run.segments) if seg == where]
        gt, hit = (run.column(name)[chosen] for name in ("gt_share", "hit"))
        at = [run.layers[i] for i in chosen]
        self.ground[run.model].add([*(("gt_share", x) for x in at), *(("hit", x) for x in at)],
                                   np.concatenate([gt, hit]))
        # without --layers, a few layers spread over this run's depth: kept per run, so memory does not grow with
        # the number of layers times bins (the runs of one model capture the same layers, and pick the same)
        wanted = set(self.position_layers or spread(run.layers, DEFAULT_POSITION_LAYERS))
        bins = [(i, POSITION_BIN[seg]) for i, seg in enumerate(run.segments)
                if seg in POSITION_BIN and run.layers[i] in wanted]
        self.position[run.model].add([(run.layers[i], b) for i, b in bins],
                                     run.column("image_share")[[i for i, _ in bins]])
        return True


def table_row(run: RunMetrics, links: Links, layer: int | None) -> dict[str, Any]:
    """The run's line in the page's table, at ``layer`` (else its rendered layer, else its deepest)."""
    if layer is None:
        layer = links.layer if links.layer is not None else max(run.layers, default=None)
    row = run.row(layer) or {}
    n_tokens = row.get("n_tokens")
    return {
        "id": run.sample_id, "model": run.model, "correct": run.correct, "layer": layer,
        "n_tokens": run.n_tokens if n_tokens is None else n_tokens,
        "image_share": row.get("image_share"), "gt_share": row.get("gt_share"), "hit": row.get("hit"),
        "viewer": links.viewer, "video": links.video, "run": run.run_dir,
    }


def line(columns: Columns, model: str, label: str, x: list[int], keys: list[Hashable], *,
          resamples: int = RESAMPLES, seed: int = SEED) -> Line:
    """The mean over samples per key (plotted at ``x``) with its bootstrap interval."""
    est = bootstrap_means(columns.matrix(keys), resamples=resamples, seed=seed)
    return Line(model, label, list(x), est.mean.tolist(), est.low.tolist(), est.high.tolist(), est.n.tolist(),
                columns.n)


def spread(values: Iterable[int], count: int) -> list[int]:
    """``count`` values spread evenly over the sorted ``values`` (first and last included)."""
    values = sorted(set(values))
    if len(values) <= count:
        return values
    return [values[i] for i in np.unique(np.linspace(0, len(values) - 1, count).round().astype(int))]


@dataclass(frozen=True)
class Series:
    """Every plotted line of the report."""

    image_share: list[Line]  # per model and correctness group, over layers
    position: list[Line]  # per model and chosen layer, over the ten position bins
    position_layers: list[int]
    gt_share: list[Line]  # per model, over layers (samples with a region only)
    hit: list[Line]


def summarise(study: Study, *, resamples: int = RESAMPLES, seed: int = SEED) -> Series:
    opts = {"resamples": resamples, "seed": seed}
    present = sorted({layer for cols in study.position.values() for layer, _ in cols.columns()})
    if study.position_layers:
        chosen = [layer for layer in study.position_layers if layer in present]
    else:  # models of other depths chose other layers: all of them, unless that makes too many panels
        chosen = present if len(present) <= 2 * DEFAULT_POSITION_LAYERS else spread(present, DEFAULT_POSITION_LAYERS)
    return Series(
        image_share=list(share_lines(study, **opts)),
        position=list(position_lines(study, chosen, **opts)),
        position_layers=chosen,
        gt_share=list(ground_lines(study, "gt_share", **opts)),
        hit=list(ground_lines(study, "hit", **opts)),
    )


def share_lines(study: Study, **opts) -> Iterable[Line]:
    """Correct and incorrect answers per model; "unknown" only for a model whose runs never say which."""
    for model in model_order(study):
        known = study.groups[model][CORRECT] + study.groups[model][INCORRECT] > 0
        for group in GROUPS:
            cols = study.share.get((model, group))
            if cols is None or cols.n == 0 or (group == UNKNOWN and known):
                continue
            keys = cols.columns()
            yield line(cols, model, group, keys, keys, **opts)


def position_lines(study: Study, layers: list[int], **opts) -> Iterable[Line]:
    bins = list(range(len(POSITIONS)))
    for model in (m for m in model_order(study) if m in study.position):
        cols = study.position[model]
        have = set(cols.columns())
        for layer in layers:
            keys = [(layer, b) for b in bins]
            if have.intersection(keys):
                yield line(cols, model, f"layer {layer}", bins, keys, **opts)


def ground_lines(study: Study, kind: str, **opts) -> Iterable[Line]:
    for model in (m for m in model_order(study) if m in study.ground):
        cols = study.ground[model]
        layers = sorted(layer for k, layer in cols.columns() if k == kind)
        if layers:
            yield line(cols, model, kind, layers, [(kind, layer) for layer in layers], **opts)
