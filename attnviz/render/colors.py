"""Colour maps and the weight normalisation shared by the text and image panels.

Weights become colours through a 256-entry lookup table, so a frame costs one integer gather per token or
cell instead of a colormap call.
"""

from __future__ import annotations

import numpy as np

from attnviz.errors import SettingError
from attnviz.schema import Norm

LUT_SIZE = 256
BACKGROUND_RGB = (22, 24, 29)  # dark panels: red, green and blue glyphs all stay readable on them
HEADER_RGB = (228, 230, 235)  # header and caption text
MUTED_RGB = (150, 155, 165)  # secondary header text
CURRENT_TOKEN_RGB = (66, 156, 255)  # the token being written
GRID_RGB = (255, 255, 255)  # cell grid lines, blended at GRID_ALPHA
GRID_ALPHA = 0.35
EXCLUDED_RGB = (105, 108, 118)  # tokens left out of the scale (sinks): visible, but clearly off the map
TRUTH_RGB = (255, 64, 255)  # ground-truth overlay
POINT_RGB = (66, 156, 255)  # coordinates in the generated text (the current token's blue)


def red_green_lut(n: int = LUT_SIZE) -> np.ndarray:
    """(n, 3) uint8: the predecessor's linear map, pure red (weight 0) to pure green (weight 1)."""
    w = np.linspace(0.0, 1.0, n)
    rgb = np.stack([1.0 - w, w, np.zeros_like(w)], axis=1)
    return np.round(rgb * 255).astype(np.uint8)


def colormap_lut(name: str, n: int = LUT_SIZE) -> np.ndarray:
    """(n, 3) uint8 lookup table for ``"red_green"`` or any matplotlib colormap name."""
    if name == "red_green":
        return red_green_lut(n)
    import matplotlib  # imported lazily: only non-default colour maps need it

    try:
        cmap = matplotlib.colormaps[name]
    except KeyError:
        raise SettingError(
            f"unknown colormap {name!r}: use 'red_green' or a matplotlib colormap name (e.g. 'viridis')"
        ) from None
    rgba = cmap(np.linspace(0.0, 1.0, n))  # (n, 4) float in 0..1
    return np.round(rgba[:, :3] * 255).astype(np.uint8)


NORM_MODES = tuple(m.value for m in Norm)


def renormalise(weights: np.ndarray) -> np.ndarray:
    """(N,) raw attention -> (N,) float64 summing to 1 (negatives and NaN dropped; all-zero stays zero)."""
    w = np.nan_to_num(np.clip(np.asarray(weights, dtype=np.float64).ravel(), 0.0, None))
    total = w.sum()
    return w / total if total > 0 else w


def normalise(
    weights: np.ndarray,
    mode: str = "step",
    *,
    gamma: float = 0.4,
    scale: tuple[float, float] | None = None,
    decades: float = 3.0,
) -> np.ndarray:
    """(N,) raw attention of the shown tokens -> (N,) float32 in 0..1, the position on the colour map.

    The weights are first renormalised to sum 1 over the N tokens, then:

    - ``"step"``: min-max over these N weights, then ``w ** gamma`` (gamma < 1 lifts mid-range weights so more
      than the single top token shows colour). The predecessor's scale.
    - ``"global"``: ``(w - lo) / (hi - lo)`` with ``scale=(lo, hi)`` fixed for the whole video (see
      :func:`scale_of`), then ``w ** gamma``: colours compare across frames.
    - ``"log"``: ``log10(w)`` placed on a window of ``decades`` decades below this step's maximum; gamma unused.

    A constant input (a single weight too) has no range and maps to 0, like the predecessor's
    ``(w - min) / (max - min + eps)``.
    """
    w = renormalise(weights)
    if w.size == 0:
        return np.zeros(0, dtype=np.float32)
    if mode == "log":
        top = w.max()
        if top <= 0:
            return np.zeros(w.shape, dtype=np.float32)
        with np.errstate(divide="ignore"):
            w = (np.log10(w / top) + decades) / decades
        return np.clip(np.nan_to_num(w, neginf=0.0), 0.0, 1.0).astype(np.float32)
    if mode == "global":
        if scale is None:
            raise ValueError("normalise(mode='global') needs scale=(lo, hi) from scale_of()")
        lo, hi = scale
    elif mode == "step":
        lo, hi = w.min(), w.max()
    else:
        raise ValueError(f"unknown normalisation {mode!r}: use one of {', '.join(NORM_MODES)}")
    if hi - lo <= 1e-12:
        return np.zeros(w.shape, dtype=np.float32)
    w = np.clip((w - lo) / (hi - lo), 0.0, 1.0)
    return (w**gamma).astype(np.float32)


def scale_of(rows) -> tuple[float, float]:
    """(lo, hi) over every renormalised weight of ``rows`` (an iterable of (N_t,) arrays): the global scale."""
    lo, hi = np.inf, -np.inf
    for row in rows:
        w = renormalise(row)
        if w.size:
            lo, hi = min(lo, float(w.min())), max(hi, float(w.max()))
    return (0.0, 0.0) if lo > hi else (lo, hi)


