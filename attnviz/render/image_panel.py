"""The image panel: every image fitted into its own tile, its token grid tinted by attention each frame.

Cell edges are exact (``round(c * W / grid_w)`` per edge: cells cover the image with no leftover strip). The
untinted share of each pixel, ``image * (1 - alpha)``, is computed once in 8-bit fixed point; a frame only
expands the per-cell tint to pixels (``np.repeat`` by cell widths) and adds it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from attnviz.render.colors import BACKGROUND_RGB, GRID_ALPHA, GRID_RGB, MUTED_RGB
from attnviz.render.fonts import FontSet
from attnviz.trace import ImageGeometry

log = logging.getLogger(__name__)

GAP = 12  # pixels between tiles
PLACEHOLDER_RGB = (70, 72, 80)  # stands in for an image the caller did not pass


def cell_edges(n_cells: int, length: int) -> np.ndarray:
    """(n_cells + 1,) int pixel edges: cell c spans ``edges[c]:edges[c + 1]``, first 0, last ``length``."""
    return np.rint(np.arange(n_cells + 1) * (length / n_cells)).astype(np.int64)


def fit_size(src_w: int, src_h: int, box_w: int, box_h: int) -> tuple[int, int]:
    """(w, h) of a ``src_w x src_h`` image scaled to fit in ``box_w x box_h`` with its aspect ratio kept."""
    scale = min(box_w / src_w, box_h / src_h)
    return max(1, min(box_w, round(src_w * scale))), max(1, min(box_h, round(src_h * scale)))


def tile_boxes(
    sizes: list[tuple[int, int]], width: int, height: int, caption_h: int = 0
) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) image area per image of ``sizes`` [(w, h)], each under a ``caption_h`` caption line.

    Tries every rows x columns grid and keeps the one that shows the most image area (ties: fewer columns).
    """
    n = len(sizes)
    best: tuple[float, list[tuple[int, int, int, int]]] = (-1.0, [])
    for cols in range(1, n + 1):
        rows = math.ceil(n / cols)
        tw = (width - GAP * (cols - 1)) // cols
        th = (height - GAP * (rows - 1)) // rows - caption_h
        if tw < 1 or th < 1:
            continue
        area = sum(math.prod(fit_size(w, h, tw, th)) for w, h in sizes)
        if area > best[0]:
            step_y = th + caption_h + GAP
            boxes = [((i % cols) * (tw + GAP), (i // cols) * step_y + caption_h, tw, th) for i in range(n)]
            best = (area, boxes)
    return best[1]


@dataclass
class _Tile:
    x: int  # image's top-left in panel coordinates
    y: int
    base: np.ndarray  # (h, w, 3) uint16: image * (256 - alpha_fp), the untinted share
    y_edges: np.ndarray  # (grid_h + 1,) int
    x_edges: np.ndarray  # (grid_w + 1,) int


class ImagePanel:
    """All images of a trace in one panel; :meth:`paint` tints their cells for one frame."""

    def __init__(
        self,
        images: list[Image.Image | None],
        geometries: list[ImageGeometry],
        width: int,
        height: int,
        fonts: FontSet,
        tint_alpha: float,
        grid_lines: bool,
    ):
        self.width, self.height, self.grid_lines = width, height, grid_lines
        self.alpha_fp = int(round(np.clip(tint_alpha, 0.0, 1.0) * 256))  # tint opacity, 8-bit fixed point
        sources = [_source_image(images, g) for g in geometries]
        caption_h = fonts.line_height
        boxes = tile_boxes([im.size for im in sources], width, height, caption_h)
        canvas = Image.new("RGB", (width, height), BACKGROUND_RGB)
        draw = ImageDraw.Draw(canvas)
        self.tiles: list[_Tile] = []
        for geom, im, (bx, by, bw, bh) in zip(geometries, sources, boxes, strict=True):
            w, h = fit_size(im.width, im.height, bw, bh)
            x, y = bx + (bw - w) // 2, by + (bh - h) // 2  # centred in its tile, caption just above
            shown = im.resize((w, h), Image.LANCZOS)
            canvas.paste(shown, (x, y))
            fonts.draw(draw, (x, y - caption_h), _caption(geom, fonts, bw), MUTED_RGB)
            base = np.asarray(shown, dtype=np.uint16) * (256 - self.alpha_fp)
            self.tiles.append(_Tile(x, y, base, cell_edges(geom.grid_h, h), cell_edges(geom.grid_w, w)))
        self.static = np.asarray(canvas).copy()  # (H, W, 3) uint8: the panel without tint

    def paint(self, view: np.ndarray, cell_colors: list[np.ndarray]) -> None:
        """Tint every image's cells. ``view`` (H, W, 3) uint8; ``cell_colors[i]`` (grid_h, grid_w, 3) uint8."""
        for tile, cells in zip(self.tiles, cell_colors, strict=True):
            h, w = tile.base.shape[:2]
            tint = cells.astype(np.uint16) * self.alpha_fp  # (grid_h, grid_w, 3): tint share per cell
            tint = np.repeat(np.repeat(tint, np.diff(tile.y_edges), axis=0), np.diff(tile.x_edges), axis=1)
            out = view[tile.y : tile.y + h, tile.x : tile.x + w]
            np.right_shift(tile.base + tint, 8, out=out, casting="unsafe")
            if self.grid_lines:
                _grid(out, tile.y_edges, tile.x_edges)


def _grid(out: np.ndarray, y_edges: np.ndarray, x_edges: np.ndarray) -> None:
    """Blend light lines over the cell edges of ``out`` (h, w, 3) uint8, borders included."""
    h, w = out.shape[:2]
    g = int(round(GRID_ALPHA * 256))
    line = np.asarray(GRID_RGB, dtype=np.uint16) * g
    rows = np.unique(np.clip(y_edges, 0, h - 1))
    cols = np.unique(np.clip(x_edges, 0, w - 1))
    out[rows] = (out[rows].astype(np.uint16) * (256 - g) + line) >> 8
    out[:, cols] = (out[:, cols].astype(np.uint16) * (256 - g) + line) >> 8


def _caption(geom: ImageGeometry, fonts: FontSet, width: int) -> str:
    """The longest caption that fits the tile width: which image, and its grid (rows x columns)."""
    n = geom.index + 1
    options = (f"image {n} · {geom.grid_h}×{geom.grid_w} cells", f"image {n}", str(n))
    return next((c for c in options if fonts.text_width(c) <= width), options[-1])


def _source_image(images: list[Image.Image | None], geom: ImageGeometry) -> Image.Image:
    """The caller's image for ``geom`` as RGB, or a grey placeholder of the model's input size."""
    im = images[geom.index] if geom.index < len(images) else None
    if im is None:
        log.warning("image %d was not given; drawing a placeholder of its model size", geom.index + 1)
        return Image.new("RGB", (geom.pixel_w, geom.pixel_h), PLACEHOLDER_RGB)
    return im.convert("RGB")
