"""Grounding metrics: per answer step and layer, where the row went and whether it was the right place. Model-free.

Every row ``r`` (the attention that produced answer token ``t``, over keys ``0 .. P + t - 1``) is split over four
disjoint key classes: image tokens, prompt text, earlier answer tokens, and sinks (the ``render.exclude`` groups:
first token, chat-template scaffolding, vision markers, ...). With ``R = Σ r``:

- ``image_share = Σ_image r / R`` (and ``image_shares``: per image, over its cell tokens), ``text_share``,
  ``answer_share``, ``sink_share`` likewise (the four sum to 1);
- ``image_share_nosink = Σ_image r / (R − Σ_sink r)``: the image share with sinks out of the denominator;
- over the image cells (every image's cell tokens, images in order, ``C`` cells) the distribution
  ``p_c = r_c / Σ_cells r``: ``image_entropy = −Σ p log p / log C`` (0: one cell, 1: uniform), ``top_cell = argmax p``,
  ``top_share = max p``;
- with a ground-truth region ``G`` (a set of cells): ``gt_share = Σ_{c∈G} p_c`` and ``hit = [top_cell ∈ G]``;
- with the generic-prompt baseline ``b`` (:mod:`attnviz.baseline`): the relative distribution
  ``q_c = (p_c / b_c) / Σ (p / b)`` (cells the baseline never looks at count 0), and ``relative_top_share = max q``,
  ``relative_gt_share = Σ_{c∈G} q_c``, ``relative_hit = [argmax q ∈ G]``.

Aggregates are means over the steps of a segment: ``all``, ``think``, ``answer`` (the ``<think>``/``<answer>``
spans), ``coords`` (the tokens that write a coordinate's numbers, e.g. the digits of ``(3,5)``) and ``pos0`` …
``pos9`` (ten bins of relative position ``t / T`` in the answer: bin ``⌊10 t / T⌋``). Rows are read in blocks
from the memory-mapped store (:func:`attnviz.analysis.row_blocks`): vectorised over steps, memory bounded.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from attnviz.analysis import ROW_BLOCK, answer_segments, char_offsets, dense_rows, row_blocks, token_at
from attnviz.files import BASELINE_NAME
from attnviz.regions import compile_regex
from attnviz.trace_store import atomic_write

if TYPE_CHECKING:
    from attnviz.trace import Trace

CLASSES = ("image", "text", "answer", "sink")  # the disjoint key classes, in the one-hot's column order
SHARE_METRICS = ("image_share", "text_share", "answer_share", "sink_share", "image_share_nosink")
CELL_METRICS = ("image_entropy", "top_share")
REGION_METRICS = ("gt_share", "hit")
RELATIVE_METRICS = ("relative_top_share", "relative_gt_share", "relative_hit")  # against the generic baseline
STEP_METRICS = SHARE_METRICS + CELL_METRICS + REGION_METRICS + RELATIVE_METRICS
N_POSITION_BINS = 10


@dataclass(frozen=True)
class KeyClasses:
    """Where the keys of a trace's rows belong, for the metrics."""

    onehot: np.ndarray  # (S - 1, 4) float64: image, prompt text, answer, sink (CLASSES)
    cells: np.ndarray  # (C,) int64 sequence positions of every image's cell tokens, raster order, images in order
    cell_image: np.ndarray  # (C,) int64 the image each cell belongs to
    region: np.ndarray | None  # (C,) bool: cell inside the ground-truth region; None: the sample has none


def key_classes(trace: Trace, sinks: np.ndarray, regions: Sequence[np.ndarray] | None = None) -> KeyClasses:
    """``sinks`` (S,) bool (:func:`attnviz.sinks.sink_mask`); ``regions``: per image a (grid_h, grid_w) bool
    mask (:mod:`attnviz.regions`), or None."""
    keys = len(trace.token_ids) - 1
    kinds = np.asarray(trace.token_kinds[:keys], dtype=object)
    image = kinds == "image"
    sink = np.asarray(sinks[:keys], dtype=bool) & ~image
    in_prompt = np.arange(keys) < trace.prompt_len
    columns = [image, ~image & ~sink & in_prompt, ~image & ~sink & ~in_prompt, sink]
    cells, owners, inside = [], [], []
    for g in trace.images:
        index = np.asarray(g.cell_positions if g.cell_positions is not None else g.positions, dtype=np.int64)
        has_token = index >= 0  # (grid_h * grid_w,) raster order
        cells.append(index[has_token])
        owners.append(np.full(int(has_token.sum()), g.index, dtype=np.int64))
        if regions is not None:
            inside.append(np.asarray(regions[g.index], dtype=bool).reshape(-1)[has_token])
    empty = np.zeros(0, np.int64)
    return KeyClasses(
        onehot=np.stack(columns, axis=1).astype(np.float64),
        cells=np.concatenate(cells) if cells else empty,
        cell_image=np.concatenate(owners) if owners else empty,
        region=(np.concatenate(inside) if inside else np.zeros(0, bool)) if regions is not None else None,
    )


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.full_like(num, np.nan, dtype=np.float64), where=den > 0)


def block_metrics(
    rows: np.ndarray, classes: KeyClasses, n_images: int, baseline: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """(n, S - 1) rows -> each metric (n,), ``image_shares`` (n, n_images), ``top_cell`` (n,) (-1: no cells).
    ``baseline``: (C,) the generic prompt's cell distribution, for the relative metrics."""
    rows = np.maximum(rows, 0.0, dtype=np.float64)  # (n, S - 1) clipped at 0, in float64
    mass = rows @ classes.onehot  # (n, 4)
    total = mass.sum(axis=1)
    out = dict(zip(SHARE_METRICS[:4], _ratio(mass, total[:, None]).T, strict=True))
    out["image_share_nosink"] = _ratio(mass[:, 0], total - mass[:, 3])
    weights = rows[:, classes.cells]  # (n, C)
    if n_images == 1:  # every cell is the one image's
        per_image = weights.sum(axis=1, keepdims=True)
    else:
        per_image = np.zeros((len(rows), n_images))
        for i in range(n_images):
            per_image[:, i] = weights[:, classes.cell_image == i].sum(axis=1)
    out["image_shares"] = _ratio(per_image, total[:, None])
    out.update(_cell_metrics(weights, classes.region))
    out.update(_relative_metrics(weights, baseline, classes.region))
    return out


def relative_weights(weights: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """(n, C) cell weights / (C,) baseline distribution (0 where the baseline is 0), each row summing to 1."""
    ratio = np.divide(weights, baseline, out=np.zeros_like(weights, dtype=np.float64), where=baseline > 0)
    total = ratio.sum(axis=1, keepdims=True)
    return np.divide(ratio, total, out=np.zeros_like(ratio), where=total > 0)


def _relative_metrics(weights: np.ndarray, baseline: np.ndarray | None, region: np.ndarray | None):
    out = dict.fromkeys(RELATIVE_METRICS, np.full(len(weights), np.nan))
    if baseline is None or weights.shape[1] == 0 or len(baseline) != weights.shape[1]:
        return out
    q = relative_weights(weights, np.asarray(baseline, dtype=np.float64))
    empty = q.sum(axis=1) <= 0
    top = np.argmax(q, axis=1)
    out["relative_top_share"] = np.where(empty, np.nan, q.max(axis=1))
    if region is not None and region.any():
        out["relative_gt_share"] = np.where(empty, np.nan, q @ region.astype(np.float64))
        out["relative_hit"] = np.where(empty, np.nan, region[top].astype(np.float64))
    return out


def _cell_metrics(weights: np.ndarray, region: np.ndarray | None) -> dict[str, np.ndarray]:
    """(n, C) cell weights -> entropy, top cell and share, and the ground-truth share and hit."""
    n, count = weights.shape
    nan = np.full(n, np.nan)
    if count == 0:
        return {"image_entropy": nan, "top_share": nan, "top_cell": np.full(n, -1), "gt_share": nan, "hit": nan}
    cell_total = weights.sum(axis=1, keepdims=True)
    empty = cell_total[:, 0] <= 0  # nothing on the cells: no distribution
    p = np.divide(weights, cell_total, out=np.zeros_like(weights), where=cell_total > 0)  # (n, C), 0 where empty
    plogp = p * np.log(np.where(p > 0, p, 1.0))  # 0 log 0 = 0
    entropy = -plogp.sum(axis=1) / np.log(count) if count > 1 else np.zeros(n)
    top = np.argmax(p, axis=1)
    out = {
        "image_entropy": np.where(empty, np.nan, entropy),
        "top_share": np.where(empty, np.nan, p[np.arange(n), top]),
        "top_cell": np.where(empty, -1, top),
        "gt_share": nan, "hit": nan,
    }
    if region is not None and region.any():
        out["gt_share"] = np.where(empty, np.nan, p @ region.astype(np.float64))
        out["hit"] = np.where(empty, np.nan, region[top].astype(np.float64))
    return out


def step_metrics(trace: Trace, layer: int, classes: KeyClasses) -> dict[str, np.ndarray]:
    """Every step metric of ``layer``: each (T,) float64 (NaN where it does not apply), ``image_shares``
    (T, n_images), ``top_cell`` (T,) int64 index into ``classes.cells``."""
    parts: list[dict[str, np.ndarray]] = []
    baseline = trace.baseline.get(layer)
    for _, rows in row_blocks(trace, layer):
        parts.append(block_metrics(rows, classes, len(trace.images), baseline))
    if not parts:
        return {name: np.zeros(0) for name in (*STEP_METRICS, "top_cell")} | {
            "image_shares": np.zeros((0, len(trace.images)))}
    if len(parts) == 1:  # an answer shorter than a block (most are)
        return parts[0]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def layer_step_metrics(trace: Trace, layers: Sequence[int], classes: KeyClasses) -> dict[int, dict[str, np.ndarray]]:
    """:func:`step_metrics` of every layer of ``layers``. A short answer's rows of several layers (without a
    baseline) are measured together, as many as one block of rows holds: the same numbers, a quarter of the calls
    for a 4-layer model's 20-token answer."""
    steps, out = trace.n_steps, {}
    together = [layer for layer in layers if trace.baseline.get(layer) is None] if 0 < steps <= ROW_BLOCK else []
    per_block = ROW_BLOCK // max(steps, 1)
    for start in range(0, len(together), per_block):
        batch = together[start : start + per_block]
        rows = np.concatenate([dense_rows(trace, layer, 0, steps) for layer in batch])  # (len(batch) * T, S - 1)
        measured = block_metrics(rows, classes, len(trace.images))
        for k, layer in enumerate(batch):
            out[layer] = {name: values[k * steps : (k + 1) * steps] for name, values in measured.items()}
    return {layer: out[layer] if layer in out else step_metrics(trace, layer, classes) for layer in layers}


def coordinate_steps(texts: Sequence[str], regex: str) -> np.ndarray:
    """Steps whose token writes part of a coordinate's number (the ``x`` / ``y`` groups of ``regex``)."""
    offsets = char_offsets(texts)
    steps: set[int] = set()
    for match in compile_regex(regex).finditer("".join(texts)):
        for group in ("x", "y"):
            start, end = match.span(group)
            if start >= 0:
                steps.update(range(token_at(offsets, start), token_at(offsets, end - 1) + 1))
    return np.asarray(sorted(steps), dtype=np.int64)


def segment_steps(trace: Trace, regex: str | None = None) -> dict[str, np.ndarray]:
    """Steps of each segment: ``all``, ``think`` / ``answer`` (when the answer has them), ``coords`` (the tokens
    that write coordinates, when ``regex`` finds some), ``pos0`` … ``pos9``."""
    n = trace.n_steps
    found: dict[str, np.ndarray] = {"all": np.arange(n)}
    for seg in answer_segments(trace):
        span = np.arange(seg.first, seg.last + 1)
        found[seg.name] = np.union1d(found.get(seg.name, np.zeros(0, np.int64)), span).astype(np.int64)
    coords = coordinate_steps(trace.token_texts[trace.prompt_len :], regex) if regex else np.zeros(0, np.int64)
    if len(coords):
        found["coords"] = coords
    bins = np.minimum((np.arange(n) * N_POSITION_BINS) // max(n, 1), N_POSITION_BINS - 1)
    for b in range(N_POSITION_BINS):
        steps = np.flatnonzero(bins == b)
        if len(steps):
            found[f"pos{b}"] = steps
    return found


def segment_means(values: np.ndarray, members: np.ndarray) -> np.ndarray:
    """(M, T) step values and (G, T) 0/1 segment membership -> (G, M) means over each segment's steps, NaN left
    out (NaN where a segment has no value): two matrix products for every segment at once."""
    valid = ~np.isnan(values)
    sums = members @ np.where(valid, values, 0.0).T  # (G, M)
    counts = members @ valid.T.astype(np.float64)
    return np.divide(sums, counts, out=np.full_like(sums, np.nan), where=counts > 0)


def segment_members(segments: dict[str, np.ndarray], n_steps: int) -> np.ndarray:
    """(G, T) 0/1: step t belongs to segment g (segments in ``segments``' order)."""
    members = np.zeros((len(segments), n_steps))
    for g, steps in enumerate(segments.values()):
        members[g, steps] = 1.0
    return members


def aggregate_segments(per_layer: dict[int, dict[str, np.ndarray]], segments: dict[str, np.ndarray],
                       n_steps: int) -> list[dict]:
    """One row per layer × segment: the layer, the segment, its token count and the means of every step metric and
    per-image share (None where a mean has no value). Every layer's means in one matrix product."""
    if not per_layer:
        return []
    layers = list(per_layer)
    n_images = per_layer[layers[0]]["image_shares"].shape[1]
    width = len(STEP_METRICS) + n_images  # one layer's values per segment
    values = np.concatenate([
        np.vstack([*(per_layer[layer][name] for name in STEP_METRICS), per_layer[layer]["image_shares"].T])
        for layer in layers
    ])  # (L * width, T)
    means = segment_means(values, segment_members(segments, n_steps)).tolist()  # (G, L * width)
    counts = [int(len(steps)) for steps in segments.values()]
    rows = []
    for i, layer in enumerate(layers):
        for name, count, line in zip(segments, counts, means, strict=True):
            at = line[i * width : (i + 1) * width]
            at = [None if v != v else v for v in at]  # v != v: NaN, no value (JSON null)
            rows.append({"layer": layer, "segment": name, "n_tokens": count,
                         **dict(zip(STEP_METRICS, at, strict=False)), "image_shares": at[len(STEP_METRICS) :]})
    return rows


def metric_rows(
    trace: Trace, layers: Sequence[int], classes: KeyClasses, regex: str | None = None
) -> tuple[list[dict], dict[int, dict]]:
    """(tidy rows: one per layer × segment, per layer the step metrics) for every layer of ``layers``; ``regex``:
    how coordinates are written (for the ``coords`` segment)."""
    per_layer = layer_step_metrics(trace, layers, classes)
    return aggregate_segments(per_layer, segment_steps(trace, regex), trace.n_steps), per_layer


def save_baseline(trace_dir: Path, dists: dict[int, np.ndarray], prompt: str) -> None:
    """``baseline.npz``: ``layers`` (L,), ``cells`` (L, C) float32 distributions, the ``prompt`` it was asked."""
    layers = sorted(dists)
    buffer = io.BytesIO()
    np.savez(buffer, layers=np.asarray(layers, np.int32), cells=np.stack([dists[ly] for ly in layers]),
             prompt=np.asarray(prompt))
    atomic_write(Path(trace_dir) / BASELINE_NAME, lambda f: f.write(buffer.getvalue()))


def load_baseline(trace_dir: Path) -> dict[int, np.ndarray]:
    """Per layer the (C,) generic-prompt cell distribution; {} when the run has no baseline."""
    path = Path(trace_dir) / BASELINE_NAME
    if not path.is_file():
        return {}
    with np.load(path) as data:
        return {int(layer): cells for layer, cells in zip(data["layers"], data["cells"], strict=True)}
