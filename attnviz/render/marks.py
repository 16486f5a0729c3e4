"""Overlay marks as sparse pixel lists ("stamps"), drawn once and pasted into every frame from their step on.

A ring marks a coordinate the model wrote; a cross marks the ground truth (shape as well as colour differ, so
the two stay apart for colour-blind readers); a line joins consecutive written points (a trajectory).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw


@dataclass(frozen=True)
class Stamp:
    step: int  # first frame that shows it
    ys: np.ndarray  # (P,) int row in the panel
    xs: np.ndarray  # (P,) int column in the panel
    rgb: tuple[int, int, int]


def mark_size(tile_w: int, tile_h: int) -> int:
    """Marker radius in pixels: readable on a big tile, not covering a small one."""
    return int(np.clip(round(min(tile_w, tile_h) / 30), 3, 14))


def _stamp(draw_fn, box: tuple[int, int, int, int], clip: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (ys, xs) that ``draw_fn(draw, dx, dy)`` paints inside ``box`` (x0, y0, x1, y1), clipped to ``clip``."""
    x0, y0, x1, y1 = box
    canvas = Image.new("L", (x1 - x0 + 1, y1 - y0 + 1), 0)
    draw_fn(ImageDraw.Draw(canvas), -x0, -y0)
    ys, xs = np.nonzero(np.asarray(canvas) > 127)
    ys, xs = ys + y0, xs + x0
    cx0, cy0, cx1, cy1 = clip
    keep = (xs >= cx0) & (xs < cx1) & (ys >= cy0) & (ys < cy1)
    return ys[keep], xs[keep]


def ring(cx: float, cy: float, r: int, clip) -> tuple[np.ndarray, np.ndarray]:
    width = max(2, r // 3)

    def draw(d: ImageDraw.ImageDraw, dx: int, dy: int) -> None:
        d.ellipse([cx - r + dx, cy - r + dy, cx + r + dx, cy + r + dy], outline=255, width=width)
        d.ellipse([cx - 1 + dx, cy - 1 + dy, cx + 1 + dx, cy + 1 + dy], fill=255)

    box = (int(cx - r - 2), int(cy - r - 2), int(cx + r + 2), int(cy + r + 2))
    return _stamp(draw, box, clip)


def cross(cx: float, cy: float, r: int, clip) -> tuple[np.ndarray, np.ndarray]:
    width = max(2, r // 3)

    def draw(d: ImageDraw.ImageDraw, dx: int, dy: int) -> None:
        d.line([cx - r + dx, cy - r + dy, cx + r + dx, cy + r + dy], fill=255, width=width)
        d.line([cx - r + dx, cy + r + dy, cx + r + dx, cy - r + dy], fill=255, width=width)

    box = (int(cx - r - 2), int(cy - r - 2), int(cx + r + 2), int(cy + r + 2))
    return _stamp(draw, box, clip)


def segment(a: tuple[float, float], b: tuple[float, float], width: int, clip) -> tuple[np.ndarray, np.ndarray]:
    def draw(d: ImageDraw.ImageDraw, dx: int, dy: int) -> None:
        d.line([a[0] + dx, a[1] + dy, b[0] + dx, b[1] + dy], fill=255, width=width)

    pad = width + 2
    box = (int(min(a[0], b[0]) - pad), int(min(a[1], b[1]) - pad), int(max(a[0], b[0]) + pad),
           int(max(a[1], b[1]) + pad))
    return _stamp(draw, box, clip)


def paint_stamps(view: np.ndarray, stamps: list[Stamp], step: int) -> None:
    """Paste every stamp whose step has come into ``view`` (H, W, 3) uint8."""
    for s in stamps:
        if s.step <= step:
            view[s.ys, s.xs] = s.rgb


def point_stamps(
    placed: list[tuple[int, float, float, int]],  # (tile, u, v, step) per point, in text order
    tiles: list[tuple[int, int, int, int]],  # (x, y, w, h) of each image in the panel
    rgb: tuple[int, int, int],
    shape: str = "ring",
    join: bool = True,
) -> list[Stamp]:
    """Stamps for points at (u, v) fractions of their image; consecutive points on one image joined by lines."""
    stamps: list[Stamp] = []
    previous: dict[int, tuple[float, float]] = {}
    for tile, u, v, step in placed:
        x, y, w, h = tiles[tile]
        clip = (x, y, x + w, y + h)
        cx, cy = x + u * w, y + v * h
        r = mark_size(w, h)
        if join and tile in previous:
            stamps.append(Stamp(step, *segment(previous[tile], (cx, cy), max(1, r // 4), clip), rgb))
        stamps.append(Stamp(step, *(ring if shape == "ring" else cross)(cx, cy, r, clip), rgb))
        previous[tile] = (cx, cy)
    return stamps
