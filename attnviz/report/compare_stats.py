"""The comparison section's numbers, streamed one sample at a time: per compared model and reference layer the paired
difference of every metric (the mean over samples of each sample's delta, model − reference, already layer-matched
in its compare.json) with a percentile-bootstrap interval that resamples samples (:mod:`attnviz.report.stats`), both
models' means over the same samples, the JS divergence, each model's level of the plotted metrics, and the samples
whose attention changed most. Per sample it keeps one float per (layer, segment, metric) delta (the bootstrap needs
them) and sums for the means.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from attnviz.report.aggregate import Columns, Line, ground_segment, line
from attnviz.report.collect import ALL, POSITIONS, VALUES, RunMetrics, href
from attnviz.report.compare_read import Job, Pairing, SampleCompare
from attnviz.report.stats import RESAMPLES, SEED, bootstrap_means

METRICS = tuple(v for v in VALUES if v != "n_tokens")  # every metric a delta is kept of
JS = "js_divergence"
PLOT_METRICS = ("image_share", "gt_share", "hit", "image_entropy")
GROUND = ("gt_share", "hit")  # judged on the coordinate tokens when there are any (as the main report does)
CHANGE_SEGMENT = "answer"  # the table's deltas (the whole answer when it has no <answer> span)
CHANGED_SHOWN = 100  # the table lists this many samples (the most changed); the note gives the total
SEGMENT_ORDER = {s: i for i, s in enumerate((ALL, "think", "answer", "coords", *POSITIONS))}
CHUNK_COLUMNS = 512  # columns bootstrapped at once: bounds the resampled means' memory (2000 × 512 floats)
_COLUMN = {name: i for i, name in enumerate(VALUES)}


class RunTable:
    """A run's metrics.json values by (layer, segment, metric) (NaN where it has none)."""

    def __init__(self, run: RunMetrics | None) -> None:
        self.values = run.values if run is not None else np.zeros((0, len(VALUES)))
        pairs = [] if run is None else zip(run.layers, run.segments, strict=True)
        self.rows = {key: i for i, key in enumerate(pairs)}
        self.segments = set() if run is None else set(run.segments)

    def get(self, layer: int | None, segment: str, metric: str) -> float:
        i = self.rows.get((layer, segment))
        return float("nan") if i is None else float(self.values[i, _COLUMN[metric]])


def _add(columns: Columns, keys: list[Hashable], values: list[float]) -> None:
    if keys:
        columns.add(keys, np.asarray(values, dtype=np.float64))


@dataclass
class Pairwise:
    """One compared model against the reference, over the samples of one comparison."""

    model: str
    layer_match: str
    pairs: dict[int, int]  # reference layer -> the model's (the first sample's; others must agree)
    deltas: Columns = field(default_factory=Columns)  # (layer, segment, metric)
    js: Columns = field(default_factory=Columns)  # layer
    plot: Columns = field(default_factory=Columns)  # (metric, layer): the plotted segment of each metric
    sums: dict[tuple, list] = field(default_factory=dict)  # (layer, segment, metric) -> [Σ ref, Σ model, n]
    mismatched: int = 0  # samples whose layers were matched otherwise: left out

    def add(self, pairing: Pairing, ref: RunTable, model: RunTable) -> bool:
        """Keep one sample's deltas; False (left out, counted) when its layers were matched otherwise."""
        if pairing.pairs != self.pairs:
            self.mismatched += 1
            return False
        keys, deltas, plot_keys, plot_values = [], [], [], []
        for layer, segments in pairing.deltas.items():
            own, ground = self.pairs.get(layer), ground_segment(segments)
            for segment, metrics in segments.items():
                for name in METRICS:
                    delta = metrics.get(name)
                    if delta is None:
                        continue
                    key = (layer, segment, name)
                    keys.append(key)
                    deltas.append(delta)
                    sums = self.sums.setdefault(key, [0.0, 0.0, 0])
                    r, q = ref.get(layer, segment, name), model.get(own, segment, name)
                    if r == r and q == q:  # both runs' values known (x == x: not NaN)
                        sums[0], sums[1], sums[2] = sums[0] + r, sums[1] + q, sums[2] + 1
                    if name in PLOT_METRICS and segment == (ground if name in GROUND else ALL):
                        plot_keys.append((name, layer))
                        plot_values.append(delta)
        _add(self.deltas, keys, deltas)
        _add(self.plot, plot_keys, plot_values)
        _add(self.js, list(pairing.js), list(pairing.js.values()))
        return True


def _levels(run: RunTable, pairs: dict[int, int]) -> tuple[list[Hashable], list[float]]:
    """A run's plotted metrics at each reference layer (its own matched layer), keyed (metric, reference layer)."""
    keys, values, ground = [], [], ground_segment(run.segments)
    for name in PLOT_METRICS:
        segment = ground if name in GROUND else ALL
        for layer, own in pairs.items():
            keys.append((name, layer))
            values.append(run.get(own, segment, name))
    return keys, values


def table_row(root: Path, sample: SampleCompare, pairing: Pairing, layer: int | None) -> dict[str, Any]:
    """The sample's line in the most-changed table: at ``layer``, the JS divergence and the deltas of segment
    "answer" (else "all"), links to its compare.html and video."""
    at = pairing.deltas.get(layer, {}) if layer is not None else {}
    segment = CHANGE_SEGMENT if CHANGE_SEGMENT in at else ALL
    deltas = at.get(segment, {})
    video = sample.videos.get(layer) or next(iter(sample.videos.values()), None)
    return {
        "id": sample.sample_id, "model": pairing.model, "layer": layer, "model_layer": pairing.pairs.get(layer),
        "js": pairing.js.get(layer), "segment": segment, "image_share": deltas.get("image_share"),
        "gt_share": deltas.get("gt_share"), "hit": deltas.get("hit"),
        "reference_correct": sample.correct.get(sample.reference), "model_correct": sample.correct.get(pairing.model),
        "viewer": href(root, sample.folder, sample.viewer), "video": href(root, sample.folder, video),
        "dir": sample.folder.relative_to(root).as_posix(),
    }


class Comparison:
    """Everything the report keeps of one comparison (a job, or the shards of one) while samples stream."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.samples = self.duplicates = 0
        self.folders: set[str] = set()  # the job folders pooled
        self.levels = {label: Columns() for label in job.key.labels}  # (metric, reference layer)
        self.pairwise: dict[str, Pairwise] = {}
        self.changed: list[dict[str, Any]] = []
        self._ids: set[str] = set()
        self._pairs: dict[int, int] | None = None  # the reference's layers (the first sample's)

    @property
    def reference(self) -> str:
        return self.job.key.reference

    def add(self, root: Path, job: Job, sample: SampleCompare, runs: dict[str, RunTable]) -> bool:
        """Keep one sample of ``job`` (one of the pooled shards; a sample compared twice counts once); returns
        whether it counted."""
        self.folders.add("." if job.folder is None else job.folder.relative_to(root).as_posix())
        if sample.sample_id in self._ids:
            self.duplicates += 1
            return False
        self._ids.add(sample.sample_id)
        self.samples += 1
        layer = job.layer if job.layer is not None else min(sample.videos, default=None)
        ref = runs[sample.reference]
        for pairing in sample.pairings:
            if pairing.model not in runs:
                continue
            pair = self.pairwise.setdefault(pairing.model, Pairwise(pairing.model, pairing.layer_match,
                                                                    pairing.pairs))
            if not pair.add(pairing, ref, runs[pairing.model]):
                continue
            _add(self.levels[pairing.model], *_levels(runs[pairing.model], pairing.pairs))
            if self._pairs is None:
                self._pairs = {a: a for a in pairing.pairs}
            row_layer = layer if layer is not None else max(pairing.deltas, default=None)
            self.changed.append(table_row(root, sample, pairing, row_layer))
        if self._pairs is not None:
            _add(self.levels[sample.reference], *_levels(ref, self._pairs))
        return True

    def changed_rows(self) -> tuple[str, list[dict[str, Any]]]:
        """("js" or "delta": what the rows are sorted by, the most changed rows first, CHANGED_SHOWN of them)."""
        by = "js" if any(r["js"] is not None for r in self.changed) else "delta"

        def change(row: dict[str, Any]) -> float:
            value = row["js"] if by == "js" else (None if row["image_share"] is None else abs(row["image_share"]))
            return -1.0 if value is None else value

        for row in self.changed:
            row["change"] = None if change(row) < 0 else change(row)
        return by, sorted(self.changed, key=change, reverse=True)[:CHANGED_SHOWN]


def _key_order(key: tuple) -> tuple:
    """(layer, segment, metric) in reading order: layers up, segments as metrics.json writes them, the JS
    divergence first, then the metrics in metrics.csv's order."""
    layer, segment, metric = key
    return layer, SEGMENT_ORDER.get(segment, len(SEGMENT_ORDER)), segment, (METRICS.index(metric) if metric != JS
                                                                            else -1)


def estimates(columns: Columns, keys: list[Hashable], *, resamples: int, seed: int) -> dict[Hashable, tuple]:
    """key -> (n, mean, low, high) over the samples, a bounded block of columns at a time (each block draws the
    same resamples: same seed, same samples)."""
    out = {}
    for start in range(0, len(keys), CHUNK_COLUMNS):
        block = keys[start : start + CHUNK_COLUMNS]
        est = bootstrap_means(columns.matrix(block), resamples=resamples, seed=seed)
        for i, key in enumerate(block):
            out[key] = (int(est.n[i]), float(est.mean[i]), float(est.low[i]), float(est.high[i]))
    return out


def csv_rows(comparison: Comparison, *, resamples: int = RESAMPLES, seed: int = SEED) -> Iterable[dict[str, Any]]:
    """compare.csv's rows of one comparison: per compared model, reference layer, segment and metric the paired
    difference with its interval, both means over the same samples; the JS divergence as metric "js_divergence"."""
    opts = {"resamples": resamples, "seed": seed}
    for model, pair in comparison.pairwise.items():
        found = estimates(pair.deltas, pair.deltas.columns(), **opts)
        found.update({(layer, ALL, JS): v for layer, v in estimates(pair.js, pair.js.columns(), **opts).items()})
        for key in sorted(found, key=_key_order):
            layer, segment, metric = key
            n, diff, low, high = found[key]
            ref_sum, model_sum, both = pair.sums.get(key, (0.0, 0.0, 0))
            paired = both == n and metric != JS  # the means over exactly the samples of the difference, or none
            yield {"reference": comparison.reference, "model": model, "layer": layer,
                   "model_layer": pair.pairs.get(layer), "segment": segment, "metric": metric, "n": n,
                   "mean_reference": ref_sum / n if paired else None, "mean_model": model_sum / n if paired else None,
                   "diff": diff, "diff_lo": low, "diff_hi": high}


def plot_lines(comparison: Comparison, *, resamples: int = RESAMPLES, seed: int = SEED
               ) -> tuple[dict[str, list[Line]], dict[str, list[Line]]]:
    """Per plotted metric: every model's level over the reference layers (the reference first), and every compared
    model's paired difference; intervals by bootstrap."""
    opts = {"resamples": resamples, "seed": seed}
    levels: dict[str, list[Line]] = {name: [] for name in PLOT_METRICS}
    diffs: dict[str, list[Line]] = {name: [] for name in PLOT_METRICS}
    for name in PLOT_METRICS:
        for label in comparison.job.key.labels:
            cols = comparison.levels[label]
            layers = sorted(layer for metric, layer in cols.columns() if metric == name)
            if cols.n and layers:
                levels[name].append(line(cols, label, name, layers, [(name, x) for x in layers], **opts))
        for model, pair in comparison.pairwise.items():
            layers = sorted(layer for metric, layer in pair.plot.columns() if metric == name)
            if pair.plot.n and layers:
                diffs[name].append(line(pair.plot, model, name, layers, [(name, x) for x in layers], **opts))
    return levels, diffs
