"""Checkpoints compared on one sample, in one model-free place: layer matching, the divergence of the image-cell
distributions, the difference of two rows, the token-alignment check and the deltas of two metrics.json files.

Several checkpoints (base / SFT / RL) read the same answer tokens (teacher-forced replay), so their rows share
every key and can be subtracted key by key. The first model is the **reference**; every difference is
``model − reference``. Imports numpy and the model-free trace layers only (:mod:`attnviz.analysis` reads the rows
in blocks from the memory-mapped store; :mod:`attnviz.sinks` finds the sinks), so nothing here loads a model.

- Layers: equal depths pair by index; otherwise reference layer ``l`` of ``n_ref`` pairs with the model's
  ``round(l * (n_model - 1) / (n_ref - 1))`` (relative depth; Python's ``round``, ties to even).
- Image distributions: per answer step the row over every image cell (all images, raster order), renormalised to
  sum 1 (``p_c`` of :mod:`attnviz.metrics`); NaN for a step that puts no weight on any cell.
- ``js_divergence``: Jensen-Shannon divergence in bits, in [0, 1], symmetric, 0 for equal rows; the per-layer
  figure is its mean over the answer steps where both distributions exist.
- Row differences: each row as shares of its non-sink weight, ``r_k / (R − Σ_sinks r)`` (the normaliser of
  ``image_share_nosink``), so a model that parks more attention on the sinks does not look weaker everywhere;
  sinks themselves are NaN (drawn grey, off the scale). ``d = shares_model − shares_reference``.
- Difference scale: symmetric, ``±s`` with ``s = max |d|`` over the shown keys of **every** answer step, one for
  the text keys and one for the image cells (as the single-run video scales text and images apart). A global
  scale keeps "neutral" meaning "the models agree" in every frame: a per-step scale would paint the steps where
  the checkpoints agree to within 0.001 in full colour. Colour position ``0.5 + 0.5 · sign(d) · (|d| / s) ** γ``
  (γ: ``render.gamma``, the single-run lift of mid-range values).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from attnviz.analysis import ROW_BLOCK, dense_rows, image_positions, quote, row_blocks
from attnviz.errors import AttnvizError
from attnviz.sinks import sink_mask

if TYPE_CHECKING:
    from attnviz.trace import Trace

INDEX, RELATIVE_DEPTH = "index", "relative depth"  # how reference layers map onto a model's
NOT_METRICS = ("layer", "segment", "n_tokens")  # keys of a metrics.json row that are no metric


# --- layers ---------------------------------------------------------------------------------------------------


def layer_pairs(n_ref: int, n_model: int) -> tuple[str, list[tuple[int, int]]]:
    """(how, [(reference layer, model layer)] for every reference layer): by index when the depths are equal, else
    by relative depth, ``round(l * (n_model - 1) / (n_ref - 1))``."""
    if n_ref < 1 or n_model < 1:
        raise AttnvizError(f"cannot match layers of models with {n_ref} and {n_model} decoder layers")
    if n_ref == n_model:
        return INDEX, [(layer, layer) for layer in range(n_ref)]
    span = max(n_ref - 1, 1)
    return RELATIVE_DEPTH, [(layer, round(layer * (n_model - 1) / span)) for layer in range(n_ref)]


def stored_pairs(ref: Trace, model: Trace, pairs: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The pairs whose rows both traces hold on disk."""
    return [(a, b) for a, b in pairs if a in ref.rows and b in model.rows]


# --- image distributions and their divergence ---------------------------------------------------------------


def image_distribution_blocks(trace: Trace, layer: int, block: int = ROW_BLOCK) -> Iterator[tuple[int, np.ndarray]]:
    """(first step, (n, C) float64): each step's row over the C image cells, summing to 1; NaN rows where a step
    puts no weight on any cell (or the trace has no images: C = 0)."""
    cells = image_positions(trace.images)  # (C,) all in the prompt: every row reaches them
    for start, rows in row_blocks(trace, layer, block):
        weights = np.clip(rows[:, cells], 0.0, None).astype(np.float64)  # (n, C)
        total = weights.sum(axis=1, keepdims=True)
        yield start, np.divide(weights, total, out=np.full_like(weights, np.nan), where=total > 0)


def image_distributions(trace: Trace, layer: int) -> np.ndarray:
    """(T, C) float64 image-cell distribution of every answer step (see :func:`image_distribution_blocks`)."""
    blocks = [p for _, p in image_distribution_blocks(trace, layer)]
    return np.concatenate(blocks) if blocks else np.zeros((0, len(image_positions(trace.images))))


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """(..., C) distributions -> (...,) Jensen-Shannon divergence in bits (base 2), in [0, 1]; NaN where either
    row is NaN or empty."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    invalid = np.isnan(p).any(axis=-1) | np.isnan(q).any(axis=-1) | (p.shape[-1] == 0)
    p, q = np.nan_to_num(p), np.nan_to_num(q)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> np.ndarray:  # KL(a || m) in bits; a > 0 implies m > 0, 0 log 0 = 0
        ratio = np.divide(a, m, out=np.ones_like(a), where=a > 0)
        return np.sum(a * np.log2(ratio), axis=-1)

    js = np.clip(0.5 * kl(p) + 0.5 * kl(q), 0.0, 1.0)
    return np.where(invalid, np.nan, js)


def js_steps(ref: Trace, model: Trace, ref_layer: int, model_layer: int) -> np.ndarray:
    """(T,) per answer step the JS divergence of the two traces' image distributions (NaN: no image mass)."""
    out = np.full(ref.n_steps, np.nan)
    pairs = zip(image_distribution_blocks(ref, ref_layer), image_distribution_blocks(model, model_layer), strict=True)
    for (start, p), (_, q) in pairs:
        out[start : start + len(p)] = js_divergence(p, q)
    return out


def mean_js(ref: Trace, model: Trace, ref_layer: int, model_layer: int) -> float | None:
    """The per-step divergence averaged over the answer steps where both have image mass; None: no such step."""
    steps = js_steps(ref, model, ref_layer, model_layer)
    valid = steps[~np.isnan(steps)]
    return float(valid.mean()) if valid.size else None


def js_by_layer(ref: Trace, model: Trace, pairs: Sequence[tuple[int, int]]) -> dict[int, float | None]:
    """{reference layer: mean divergence} for every pair both traces hold rows of."""
    return {a: mean_js(ref, model, a, b) for a, b in stored_pairs(ref, model, pairs)}


# --- row differences ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompareKeys:
    """The keys a comparison shows: the text panel's tokens, the image cells, and the sinks kept off the scale."""

    text: np.ndarray  # (N,) int64 sequence positions of the text panel (from text_start, not image), increasing
    image: np.ndarray  # (I,) int64 every image's cell positions, images in order
    sinks: np.ndarray  # (S,) bool the render.exclude groups and positions


def compare_keys(trace: Trace, text_start: int, exclude: Sequence[Any], exclude_positions: Sequence[int] = ()
                 ) -> CompareKeys:
    """The shown keys of ``trace`` (the reference: aligned traces share them)."""
    kinds = trace.token_kinds
    text = np.array([p for p in range(max(0, text_start), len(kinds)) if kinds[p] != "image"], dtype=np.int64)
    sinks = sink_mask(trace.token_texts, kinds, exclude, exclude_positions, chat=trace.chat_format)
    return CompareKeys(text, image_positions(trace.images), sinks)


def nosink_shares(rows: np.ndarray, sinks: np.ndarray) -> np.ndarray:
    """(n, K) rows -> (n, K) float64 shares of each row's non-sink weight; NaN at the sinks (``sinks`` (>= K,))."""
    rows = np.clip(np.asarray(rows, dtype=np.float64), 0.0, None)
    sink = np.asarray(sinks[: rows.shape[1]], dtype=bool)  # (K,)
    total = rows[:, ~sink].sum(axis=1, keepdims=True)  # (n, 1)
    shares = np.divide(rows, total, out=np.zeros_like(rows), where=total > 0)
    shares[:, sink] = np.nan
    return shares


def image_share_steps(trace: Trace, layer: int, keys: CompareKeys) -> np.ndarray:
    """(T,) each step's share of its non-sink weight on the image cells (``image_share_nosink`` of the metrics)."""
    out = np.zeros(trace.n_steps)
    for start, rows in row_blocks(trace, layer):
        out[start : start + len(rows)] = np.nansum(nosink_shares(rows, keys.sinks)[:, keys.image], axis=1)
    return out


def difference_rows(ref: Trace, model: Trace, ref_layer: int, model_layer: int, sinks: np.ndarray,
                    start: int, stop: int) -> np.ndarray:
    """(stop - start, S - 1) float32 ``model − reference`` of the non-sink shares (0 past each row, NaN at sinks)."""
    a = nosink_shares(dense_rows(ref, ref_layer, start, stop), sinks)
    b = nosink_shares(dense_rows(model, model_layer, start, stop), sinks)
    return (b - a).astype(np.float32)


def step_difference(ref: Trace, model: Trace, ref_layer: int, model_layer: int, sinks: np.ndarray,
                    step: int) -> np.ndarray:
    """(prompt_len + step,) float32: the difference at one answer step (its valid keys only)."""
    return difference_rows(ref, model, ref_layer, model_layer, sinks, step, step + 1)[0, : ref.prompt_len + step]


def difference_scales(ref: Trace, model: Trace, ref_layer: int, model_layer: int, keys: CompareKeys,
                      block: int = ROW_BLOCK) -> tuple[float, float]:
    """(text s, image s): max |difference| over the shown text keys and over the image cells, all steps."""
    width = len(ref.token_ids) - 1
    text, image = keys.text[keys.text < width], keys.image
    top = [0.0, 0.0]
    for start in range(0, ref.n_steps, block):
        d = np.abs(difference_rows(ref, model, ref_layer, model_layer, keys.sinks, start,
                                   min(start + block, ref.n_steps)))
        for k, cols in enumerate((text, image)):
            part = d[:, cols]
            if part.size and not np.isnan(part).all():
                top[k] = max(top[k], float(np.nanmax(part)))
    return top[0], top[1]


def diverging_positions(diff: np.ndarray, scale: float, gamma: float = 1.0) -> np.ndarray:
    """(N,) differences -> (N,) float32 positions on a diverging colour map: 0.5 at 0, 0 at ``-scale``, 1 at
    ``+scale`` (clipped), the magnitude lifted by ``gamma``; NaN stays NaN (a sink)."""
    d = np.asarray(diff, dtype=np.float64)
    if scale <= 0:
        return np.where(np.isnan(d), np.nan, 0.5).astype(np.float32)
    magnitude = np.clip(np.abs(d) / scale, 0.0, 1.0) ** gamma
    return (0.5 + 0.5 * np.sign(d) * magnitude).astype(np.float32)


# --- token alignment ------------------------------------------------------------------------------------------


def _first_difference(a: Sequence[int], b: Sequence[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def _text_at(trace: Trace, position: int) -> str:
    return quote(trace.token_texts[position]) if position < len(trace.token_texts) else "(end)"


def _geometry_problem(ref: Trace, model: Trace) -> str | None:
    if len(ref.images) != len(model.images):
        return f"see {len(ref.images)} vs {len(model.images)} images"
    for g, h in zip(ref.images, model.images, strict=True):
        if (g.pixel_w, g.pixel_h, g.grid_h, g.grid_w) != (h.pixel_w, h.pixel_h, h.grid_h, h.grid_w):
            return (f"see image {g.index + 1} at different sizes ({g.pixel_w}x{g.pixel_h} px, {g.grid_h}x{g.grid_w} "
                    f"cells vs {h.pixel_w}x{h.pixel_h} px, {h.grid_h}x{h.grid_w} cells): give both the same "
                    "model.min_pixels/max_pixels")
        if list(g.positions) != list(h.positions):
            return f"place image {g.index + 1}'s tokens differently: give both the same chat template and processor"
    return None


def alignment_problem(ref: Trace, model: Trace) -> str | None:
    """What makes two traces read different tokens (the second half of a sentence), or None when aligned."""
    geometry = _geometry_problem(ref, model)
    if geometry is not None:
        return geometry
    a, b = ref.token_ids[: ref.prompt_len], model.token_ids[: model.prompt_len]
    if a != b:
        at = _first_difference(a, b)
        return (f"have different prompts ({len(a)} vs {len(b)} tokens, first difference at position {at}: "
                f"{_text_at(ref, at)} vs {_text_at(model, at)}): give both the same tokenizer, chat template, "
                "dataset and prompt settings")
    a, b = ref.token_ids[ref.prompt_len :], model.token_ids[model.prompt_len :]
    if a != b:
        at = _first_difference(a, b)
        return (f"read different answers ({len(a)} vs {len(b)} tokens, first difference at answer step {at}: "
                f"{_text_at(ref, ref.prompt_len + at)} vs {_text_at(model, model.prompt_len + at)}): replay one "
                "answer in both (compare.answer=pred or first), or compare aggregates only (compare.answer=each)")
    return None


def check_aligned(ref: Trace, model: Trace, ref_label: str, model_label: str) -> None:
    """Raise :class:`AttnvizError` (one line naming both models and what differs) unless the two traces hold the
    same token ids, prompt length and image geometry."""
    problem = alignment_problem(ref, model)
    if problem is not None:
        raise AttnvizError(f"models {ref_label!r} and {model_label!r} cannot be compared token by token: they "
                           f"{problem}")


# --- metric deltas --------------------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if np.isfinite(value) else None


def metric_table(metrics: dict[str, Any]) -> dict[int, dict[str, dict[str, Any]]]:
    """A metrics.json payload -> {layer: {segment: row}}, segments in file order."""
    table: dict[int, dict[str, dict[str, Any]]] = {}
    for row in metrics.get("rows") or []:
        table.setdefault(int(row["layer"]), {})[str(row["segment"])] = row
    return table


def _row_delta(ref_row: dict[str, Any], model_row: dict[str, Any]) -> dict[str, float | None]:
    names = [k for k in dict.fromkeys([*ref_row, *model_row]) if k not in NOT_METRICS]
    scalar = [k for k in names if not isinstance(ref_row.get(k), list | dict)
              and not isinstance(model_row.get(k), list | dict)]
    out = {}
    for name in scalar:
        a, b = _number(ref_row.get(name)), _number(model_row.get(name))
        out[name] = None if a is None or b is None else b - a
    return out


def metric_deltas(metrics_ref: dict[str, Any], metrics_model: dict[str, Any], pairs: Sequence[tuple[int, int]]
                  ) -> dict[int, dict[str, dict[str, float | None]]]:
    """{reference layer: {segment: {metric: model − reference, None where either is None or missing}}} for every
    pair both metrics.json files have; scalar metrics only (``image_shares`` lists are left out)."""
    ref, model = metric_table(metrics_ref), metric_table(metrics_model)
    deltas: dict[int, dict[str, dict[str, float | None]]] = {}
    for a, b in pairs:
        if a not in ref or b not in model:
            continue
        segments = list(dict.fromkeys([*ref[a], *model[b]]))
        deltas[a] = {s: _row_delta(ref[a].get(s, {}), model[b].get(s, {})) for s in segments}
    return deltas
