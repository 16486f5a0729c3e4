"""A run's grounding metrics and correctness: ``metrics.json`` (aggregates) and ``metrics_steps.npz`` (per step).

Model-free: reads the trace (every layer it holds rows for) and the sample; the ground-truth region comes from the
sample's boxes (``metrics.regions_key``) or, failing those, from the points of its ground truth
(``render.overlay.ground_truth_key``, parsed and placed as the overlay does), each grown by ``metrics.region_radius``.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attnviz.errors import AttnvizError
from attnviz.files import METRICS_NAME, METRICS_STEPS_NAME
from attnviz.metrics import key_classes, metric_rows
from attnviz.regions import box_regions, parse_boxes, parse_points, point_regions
from attnviz.schema import MetricsConfig, RenderConfig, ScorerConfig
from attnviz.scoring import score
from attnviz.sinks import sink_mask
from attnviz.trace import Trace, atomic_write
from attnviz.trace_store import json_text

log = logging.getLogger(__name__)
METRICS_FORMAT = 1


def ground_truth_regions(
    trace: Trace, sample: dict[str, Any], sizes: Sequence[tuple[int, int]], render: RenderConfig,
    metrics: MetricsConfig,
) -> list[np.ndarray] | None:
    """Per image a (grid_h, grid_w) bool mask of the ground-truth cells, or None when the sample has none."""
    if not trace.images:
        return None
    space = str(render.overlay.space)
    boxes = sample.get(metrics.regions_key) if metrics.regions_key else None
    if boxes is not None:
        masks = box_regions(parse_boxes(boxes), trace.images, sizes, space)
    else:
        key = render.overlay.ground_truth_key
        truth = sample.get(key) if key else None
        points = parse_points(str(truth), render.overlay.regex) if truth is not None else []
        if not points:
            return None
        masks = point_regions(points, trace.images, sizes, space, metrics.region_radius)
    return masks if any(m.any() for m in masks) else None


@dataclass(frozen=True)
class RunMetrics:
    correct: bool | None
    layers: list[int]
    has_regions: bool


def compute_metrics(
    trace: Trace, sample: dict[str, Any], sizes: Sequence[tuple[int, int]], layers: Sequence[int],
    render: RenderConfig, metrics: MetricsConfig,
) -> tuple[list[dict], dict[int, dict], bool]:
    """(tidy rows, per-layer step metrics, whether a ground-truth region exists) for ``layers``."""
    sinks = sink_mask(trace.token_texts, trace.token_kinds, render.exclude, render.exclude_positions,
                      chat=trace.chat_format)
    regions = ground_truth_regions(trace, sample, sizes, render, metrics)
    rows, per_layer = metric_rows(trace, layers, key_classes(trace, sinks, regions), render.overlay.regex)
    return rows, per_layer, regions is not None


def write_metrics(
    trace: Trace, sample: dict[str, Any], sizes: Sequence[tuple[int, int]], *, model: str, render: RenderConfig,
    metrics: MetricsConfig, scorer: ScorerConfig, run_dir: Path, layers: Sequence[int] | None = None,
) -> RunMetrics:
    """Score the answer and, when ``metrics.enabled``, write metrics.json and metrics_steps.npz into ``run_dir``."""
    correct = score(trace.generated_text(), sample, scorer)
    layers = sorted(trace.layers if layers is None else layers)
    if not metrics.enabled:
        return RunMetrics(correct, [], False)
    try:
        rows, per_layer, has_regions = compute_metrics(trace, sample, sizes, layers, render, metrics)
    except AttnvizError as err:  # a malformed regions field: say so, keep the run
        log.warning("no grounding metrics for sample %s: %s", sample.get("id"), err)
        return RunMetrics(correct, [], False)
    payload = {
        "format": METRICS_FORMAT, "sample_id": str(sample.get("id", "")), "model": model, "correct": correct,
        "n_tokens": trace.n_steps, "layers": layers, "n_images": len(trace.images), "has_regions": has_regions,
        "rows": rows,
    }
    _write_steps(per_layer, layers, run_dir / METRICS_STEPS_NAME)
    text = json_text(payload, separators=(",", ":"), allow_nan=False)  # no indent: the C encoder, 10x faster
    atomic_write(run_dir / METRICS_NAME, lambda f: f.write(text.encode("utf-8")))
    return RunMetrics(correct, layers, has_regions)


def _write_steps(per_layer: dict[int, dict], layers: Sequence[int], path: Path) -> None:
    """Per metric an (L, T) float32 array (NaN where it does not apply), ``image_shares`` (L, T, n_images),
    ``top_cell`` (L, T) int32 and ``layers`` (L,)."""
    arrays: dict[str, np.ndarray] = {"layers": np.asarray(layers, dtype=np.int32)}
    if per_layer:
        for name in next(iter(per_layer.values())):
            dtype = np.int32 if name == "top_cell" else np.float32
            arrays[name] = np.array([per_layer[layer][name] for layer in layers], dtype=dtype)  # (L, T[, I])
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # a few kB: compressing costs more time than it saves
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
