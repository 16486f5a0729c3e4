"""Overlays read from text: coordinates in the answer and the ground truth, placed on the images.

Pure functions: the frame code turns their results into pixels.

Coordinates are found with ``render.overlay.regex`` (named groups ``x`` and ``y``, optional ``image``: the
1-based image number, default image 1) and placed on the image by ``render.overlay.space``:

- ``norm1000``: 0–1000 across the image, whatever its size (Qwen2-VL's convention, the predecessor's assumption);
- ``pixels``: pixels of the image file as given;
- ``model_pixels``: pixels of the image as the model saw it, after the processor's resize (Qwen2.5-VL's);
- ``cells``: the model's merged-patch grid, ``(column, row)`` from 0 (the demo's answers).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

import numpy as np

from attnviz.errors import AttnvizError
from attnviz.schema import OverlayConfig, Space
from attnviz.trace import ImageGeometry

DEFAULT_REGEX = OverlayConfig().regex  # "(x, y)" or "[x, y]", optionally after "image N"


@dataclass(frozen=True)
class Point:
    image: int  # 0-based image number
    x: float
    y: float
    end: int  # character offset just past the match in the parsed text


def compile_regex(pattern: str) -> re.Pattern:
    try:
        regex = re.compile(pattern)
    except re.error as err:
        raise AttnvizError(f"render.overlay.regex is not a valid regular expression ({err}): {pattern!r}") from None
    if not {"x", "y"} <= set(regex.groupindex):
        raise AttnvizError(f"render.overlay.regex needs named groups (?P<x>…) and (?P<y>…): {pattern!r}")
    return regex


def parse_points(text: str, pattern: str = DEFAULT_REGEX) -> list[Point]:
    """Every coordinate pair in ``text``, in order."""
    regex = compile_regex(pattern)
    points = []
    for m in regex.finditer(text):
        image = m.groupdict().get("image")
        try:
            x, y = float(m.group("x")), float(m.group("y"))
        except (TypeError, ValueError):
            continue  # an optional group that did not take part
        points.append(Point(int(image) - 1 if image else 0, x, y, m.end()))
    return points


def to_unit(point: Point, space: str, geom: ImageGeometry, source_size: tuple[int, int]) -> tuple[float, float]:
    """(u, v): the point as a fraction of the panel's width and height (may fall outside 0..1).

    ``norm1000`` and ``pixels`` refer to the image as given (``source_size`` (w, h)); when the grid covers only
    part of it (``geom.view_box``, LLaVA-1.5's centre crop) the point is placed within that part, as the panel
    shows it. ``model_pixels`` and ``cells`` refer to what the model saw, which is the panel already.
    """
    if space in ("norm1000", "pixels"):
        scale = (source_size[0] / 1000.0, source_size[1] / 1000.0) if space == "norm1000" else (1.0, 1.0)
        x, y = point.x * scale[0], point.y * scale[1]  # in the given image's pixels
        left, top, right, bottom = geom.view_box or (0, 0, source_size[0], source_size[1])
        return (x - left) / (right - left), (y - top) / (bottom - top)
    if space == "model_pixels":
        return point.x / geom.pixel_w, point.y / geom.pixel_h
    if space == "cells":
        return (point.x + 0.5) / geom.grid_w, (point.y + 0.5) / geom.grid_h
    raise AttnvizError(f"render.overlay.space={space!r}: use one of {', '.join(s.value for s in Space)}")


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
