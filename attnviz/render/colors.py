"""Colour maps and the weight normalisation shared by the text and image panels.

Weights become colours through a 256-entry lookup table, so a frame costs one integer gather per token or
cell instead of a colormap call.
"""

from __future__ import annotations

import numpy as np

LUT_SIZE = 256
BACKGROUND_RGB = (22, 24, 29)  # dark panels: red, green and blue glyphs all stay readable on them
HEADER_RGB = (228, 230, 235)  # header and caption text
MUTED_RGB = (150, 155, 165)  # secondary header text
CURRENT_TOKEN_RGB = (66, 156, 255)  # the token being written
GRID_RGB = (255, 255, 255)  # cell grid lines, blended at GRID_ALPHA
GRID_ALPHA = 0.35


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
        raise ValueError(
            f"unknown colormap {name!r}: use 'red_green' or a matplotlib colormap name (e.g. 'viridis')"
        ) from None
    rgba = cmap(np.linspace(0.0, 1.0, n))  # (n, 4) float in 0..1
    return np.round(rgba[:, :3] * 255).astype(np.uint8)


def normalize_weights(weights: np.ndarray, gamma: float) -> np.ndarray:
    """(N,) raw attention -> (N,) float32 in 0..1: renormalise to sum 1, min-max scale, then ``w ** gamma``.

    The gamma (< 1) lifts mid-range weights so more than the single top token shows colour. A constant input
    (a single weight too) has no range and maps to 0, like the predecessor's ``(w - min) / (max - min + eps)``.
    """
    w = np.asarray(weights, dtype=np.float64).ravel()
    if w.size == 0:
        return np.zeros(0, dtype=np.float32)
    w = np.nan_to_num(np.clip(w, 0.0, None))
    total = w.sum()
    if total > 0:
        w = w / total
    span = w.max() - w.min()
    if span <= 1e-12:
        return np.zeros(w.shape, dtype=np.float32)
    w = (w - w.min()) / span
    return (w**gamma).astype(np.float32)


def weights_to_rgb(weights: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """(...,) weights in 0..1 -> (..., 3) uint8 colours from an (n, 3) lookup table."""
    n = len(lut)
    idx = np.clip(np.rint(np.asarray(weights) * (n - 1)), 0, n - 1).astype(np.intp)
    return lut[idx]
