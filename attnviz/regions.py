"""Coordinates in text and ground-truth regions on the model's cell grids. Model-free.

Coordinates are found with ``render.overlay.regex`` (named groups ``x`` and ``y``, optional ``image``: the
1-based image number, default image 1) and placed on an image by ``render.overlay.space``:

- ``norm1000``: 0–1000 across the image, whatever its size (Qwen2-VL's convention, the predecessor's assumption);
- ``pixels``: pixels of the image file as given;
- ``model_pixels``: pixels of the image as the model saw it, after the processor's resize (Qwen2.5-VL's);
- ``cells``: the model's merged-patch grid, ``(column, row)`` from 0 (the demo's answers).

A ground-truth region is a boolean mask over each image's cell grid, ``(grid_h, grid_w)``: the cells containing the
ground truth's points (grown by a radius), or the cells a box overlaps. The renderer draws the points; the metrics
measure attention inside the region.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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


def cell_of(u: float, v: float, geom: ImageGeometry) -> tuple[int, int] | None:
    """The (row, column) of the cell holding panel point (u, v) in 0..1; None outside the grid."""
    if not (0 <= u <= 1 and 0 <= v <= 1):
        return None
    return min(int(v * geom.grid_h), geom.grid_h - 1), min(int(u * geom.grid_w), geom.grid_w - 1)


def point_regions(
    points: Sequence[Point], geometries: Sequence[ImageGeometry], sizes: Sequence[tuple[int, int]], space: str,
    radius: int = 0,
) -> list[np.ndarray]:
    """Per image a (grid_h, grid_w) bool mask: the cells holding ``points``, grown by ``radius`` cells (a square
    of side 2·radius + 1). Points off every image are ignored."""
    masks = [np.zeros((g.grid_h, g.grid_w), dtype=bool) for g in geometries]
    for point in points:
        if not 0 <= point.image < len(geometries):
            continue
        geom = geometries[point.image]
        cell = cell_of(*to_unit(point, space, geom, sizes[point.image]), geom)
        if cell is not None:
            row, col = cell
            masks[point.image][max(0, row - radius) : row + radius + 1, max(0, col - radius) : col + radius + 1] = True
    return masks


@dataclass(frozen=True)
class Box:
    image: int  # 0-based image number
    x1: float
    y1: float
    x2: float
    y2: float


def parse_boxes(value: Any) -> list[Box]:
    """A sample's ``regions`` field: ``[x1, y1, x2, y2]``, a list of such boxes (image 1), or one list of boxes per
    image. Raises AttnvizError naming the field's form when it is none of these."""
    def is_box(item: Any) -> bool:
        return isinstance(item, list | tuple) and len(item) == 4 and all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in item
        )

    if is_box(value):
        return [Box(0, *map(float, value))]
    if isinstance(value, list | tuple) and all(is_box(item) for item in value):
        return [Box(0, *map(float, item)) for item in value]
    if isinstance(value, list | tuple) and all(isinstance(per, list | tuple) and all(is_box(b) for b in per)
                                               for per in value):
        return [Box(i, *map(float, box)) for i, per in enumerate(value) for box in per]
    raise AttnvizError(
        f"the sample's regions field must be [x1, y1, x2, y2], a list of such boxes, or one list of boxes per image; "
        f"got {str(value)[:80]}"
    )


def box_regions(
    boxes: Sequence[Box], geometries: Sequence[ImageGeometry], sizes: Sequence[tuple[int, int]], space: str
) -> list[np.ndarray]:
    """Per image a (grid_h, grid_w) bool mask of the cells each box overlaps (in the panel the model saw)."""
    masks = [np.zeros((g.grid_h, g.grid_w), dtype=bool) for g in geometries]
    for box in boxes:
        if not 0 <= box.image < len(geometries):
            continue
        geom, size = geometries[box.image], sizes[box.image]
        u1, v1 = to_unit(Point(box.image, min(box.x1, box.x2), min(box.y1, box.y2), 0), space, geom, size)
        u2, v2 = to_unit(Point(box.image, max(box.x1, box.x2), max(box.y1, box.y2), 0), space, geom, size)
        if space == Space.cells:  # cell coordinates name whole cells: the box spans them inclusively
            u1, v1 = u1 - 0.5 / geom.grid_w, v1 - 0.5 / geom.grid_h
            u2, v2 = u2 + 0.5 / geom.grid_w, v2 + 0.5 / geom.grid_h
        rows = _span(v1, v2, geom.grid_h)
        cols = _span(u1, u2, geom.grid_w)
        masks[box.image][rows, cols] = True
    return masks


def _span(lo: float, hi: float, n: int) -> slice:
    """Cells of an n-cell axis that the open interval (lo, hi) in 0..1 overlaps."""
    first = max(0, math.floor(lo * n))
    last = min(n, math.ceil(hi * n))
    return slice(first, max(first, last))
