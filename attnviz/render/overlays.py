"""Overlays read from text: coordinates in the answer and the ground truth, placed on the images.

Pure functions: the frame code turns their results into pixels. Parsing coordinates and placing them on a panel
(``render.overlay.regex`` and ``space``) is :mod:`attnviz.regions`' (the metrics use it too).
"""

from __future__ import annotations

import bisect

import numpy as np

from attnviz.regions import DEFAULT_REGEX, Point, compile_regex, parse_points, to_unit
from attnviz.trace import ImageGeometry

__all__ = ["DEFAULT_REGEX", "Point", "compile_regex", "completion_steps", "parse_points", "place_points", "to_unit"]
def completion_steps(token_texts: list[str], points: list[Point]) -> list[int]:
    """For points parsed from ``"".join(token_texts)``: the index of the token that completes each one."""
    ends = np.cumsum([len(t) for t in token_texts]).tolist()  # end offset of each token
    return [min(bisect.bisect_left(ends, p.end), len(token_texts) - 1) for p in points]


def place_points(
    points: list[Point],
    steps: list[int],
    geometries: list[ImageGeometry],
    source_sizes: list[tuple[int, int]],
    space: str,
) -> tuple[list[tuple[int, float, float, int]], list[Point]]:
    """(image, u, v, step) for every point that lands on one of the images, and the points that do not."""
    placed, off = [], []
    for point, step in zip(points, steps, strict=True):
        if not 0 <= point.image < len(geometries):
            off.append(point)
            continue
        u, v = to_unit(point, space, geometries[point.image], source_sizes[point.image])
        if 0 <= u <= 1 and 0 <= v <= 1:
            placed.append((point.image, u, v, step))
        else:
            off.append(point)
    return placed, off
