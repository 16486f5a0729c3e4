"""From a trace's rows to the numbers a frame colours by: head aggregation, sink exclusion, normalisation.

Frame ``t`` uses the row that *produced* generated token ``t`` (see :mod:`attnviz.trace`). The text panel's
scale covers the shown tokens written before the current one; the image panels share one scale over all image
tokens, so images compare. Excluded (sink) positions take no part in either scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attnviz.errors import AttnvizError
from attnviz.render.colors import NORM_MODES, normalise, scale_of
from attnviz.sinks import excluded_share
from attnviz.trace import Trace

HEAD_MODES = ("mean", "max")


def aggregate_heads(head_rows: np.ndarray, how: str | int) -> np.ndarray:
    """(H, K) per-head rows -> (K,) float32: their mean, their max, or head ``how`` (an index)."""
    head_rows = np.asarray(head_rows, dtype=np.float32)
    if how == "mean":
        return head_rows.mean(axis=0)
    if how == "max":
        return head_rows.max(axis=0)
    index = int(how)
    if not -len(head_rows) <= index < len(head_rows):
        raise AttnvizError(f"render.heads={how} but the trace has {len(head_rows)} heads (0..{len(head_rows) - 1})")
    return head_rows[index]


def check_heads(how) -> str | int:
    """``render.heads`` as ``"mean"``, ``"max"`` or an int head index; anything else is a clear error."""
    if isinstance(how, str) and how in HEAD_MODES:
        return how
    try:
        return int(how)
    except (TypeError, ValueError):
        raise AttnvizError(f"render.heads={how!r}: use mean, max or a head index (0, 1, …)") from None


class RowSource:
    """Row ``t`` of one layer, aggregated over heads as configured."""

    def __init__(self, trace: Trace, layer: int, heads: str | int = "mean"):
        if layer not in trace.layers:
            raise AttnvizError(f"layer {layer} is not in the trace (captured layers: {trace.layers})")
        self.trace, self.layer, self.heads = trace, layer, check_heads(heads)
        if self.heads != "mean" and trace.n_steps:
            self.row(0)  # a layer without per-head rows or a bad head index fails before the first frame

    def row(self, step: int) -> np.ndarray:
        """(prompt_len + step,) float32."""
        if self.heads == "mean":
            return self.trace.row(self.layer, step)
        return aggregate_heads(self.trace.head_rows(self.layer, step), self.heads)  # (H, K) -> (K,)


@dataclass(frozen=True)
class StepWeights:
    """What frame ``t`` colours by."""

    text: np.ndarray  # (n_before,) float32 in 0..1 for the shown tokens before the current one; NaN: excluded
    image: np.ndarray  # (I,) float32 in 0..1 for every image token, all images; NaN: excluded
    excluded_share: float  # share of the whole row on excluded positions (0 when nothing is excluded)
    image_raw: np.ndarray | None = None  # (I,) float32 the row's own weights on every image token (not scaled)


class Weigher:
    """Per-frame weights for a text panel showing ``text_positions`` and images at ``image_positions``."""

    def __init__(
        self,
        source: RowSource,
        text_positions: np.ndarray,  # (N,) sequence positions shown in the text panel, increasing
        image_positions: np.ndarray,  # (I,) every image token
        excluded: np.ndarray,  # (S,) bool sink mask
        mode: str = "step",
        gamma: float = 0.4,
        decades: float = 3.0,
        image_divisor: np.ndarray | None = None,  # (I,) render.image_weights=relative: the baseline per image token
    ):
        if mode not in NORM_MODES:
            raise AttnvizError(f"render.norm={mode!r}: use one of {', '.join(NORM_MODES)}")
        self.source, self.mode, self.gamma, self.decades = source, mode, gamma, decades
        self.text_positions, self.image_positions = text_positions, image_positions
        self.excluded = excluded
        self.any_excluded = bool(excluded.any())
        self.text_keep = ~excluded[text_positions]  # (N,)
        self.image_keep = ~excluded[image_positions]  # (I,)
        self.text_scale = self.image_scale = None
        self.image_factor = None  # (kept I,) 1 / baseline of the kept image tokens (0 where the baseline never looks)
        if image_divisor is not None:
            divisor = np.asarray(image_divisor, dtype=np.float64)[self.image_keep]  # selected once, not per frame
            self.image_factor = np.divide(1.0, divisor, out=np.zeros_like(divisor), where=divisor > 0)
        if mode == "global":  # a pass over every row before the first frame
            steps = range(source.trace.n_steps)  # rows are read twice rather than all kept: memory stays flat
            self.text_scale = scale_of(self._text_values(source.row(t), t) for t in steps)
            self.image_scale = scale_of(self._image_values(source.row(t)) for t in steps)

    def _image_values(self, row: np.ndarray) -> np.ndarray:
        """The kept image tokens' weights, divided by the baseline in relative mode."""
        values = row[self.image_positions[self.image_keep]]
        return values if self.image_factor is None else values * self.image_factor

    def n_before(self, step: int) -> int:
        """How many shown tokens precede generated token ``step`` (they are coloured; the current is blue)."""
        return int(np.searchsorted(self.text_positions, self.source.trace.prompt_len + step, side="left"))

    def _text_values(self, row: np.ndarray, step: int) -> np.ndarray:
        n = self.n_before(step)
        return row[self.text_positions[:n][self.text_keep[:n]]]

    def at(self, step: int) -> StepWeights:
        row = self.source.row(step)  # (prompt_len + step,)
        n = self.n_before(step)
        text = np.full(n, np.nan, dtype=np.float32)
        text[self.text_keep[:n]] = self._norm(self._text_values(row, step), self.text_scale)
        image = np.full(len(self.image_positions), np.nan, dtype=np.float32)
        image[self.image_keep] = self._norm(self._image_values(row), self.image_scale)
        share = excluded_share(row, self.excluded) if self.any_excluded else 0.0
        return StepWeights(text, image, share, row[self.image_positions])

    def _norm(self, values: np.ndarray, scale) -> np.ndarray:
        return normalise(values, self.mode, gamma=self.gamma, scale=scale, decades=self.decades)
