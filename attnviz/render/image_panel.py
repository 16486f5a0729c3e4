"""The image panel: every image fitted into its own tile, its token grid tinted by attention each frame.

Cell edges are exact: cell ``c`` of ``n`` spans ``[c * L / n, (c + 1) * L / n)`` pixels, so a pixel that
straddles an edge takes each cell's tint in proportion to its overlap (no strips, no integer rounding).
A tinted pixel is ``floor(image * (256 - a) / 256) + floor(tint * a / 256)`` with ``a = round(256 * alpha)``:
the two shares never sum past 255, so a frame is one uint8 addition per pixel. The image's share is computed
once; a frame spreads the per-cell tint share to pixels (distinct pixel rows only, then row copies) and adds it.
``mode="heatmap"`` instead interpolates the cell weights bilinearly between cell centres and colours every
pixel through the colour map. A video's temporal patches share one tile (:mod:`attnviz.render.video_panel`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from attnviz.errors import SettingError
from attnviz.render.colors import BACKGROUND_RGB, EXCLUDED_RGB, GRID_ALPHA, GRID_RGB, MUTED_RGB
from attnviz.render.fonts import FontSet
from attnviz.render.marks import Stamp, paint_stamps
from attnviz.render.video_panel import STRIP_GAP, VideoSlot, panel_groups, strip_height, strongest, video_slot
from attnviz.trace import ImageGeometry

log = logging.getLogger(__name__)

GAP = 12  # pixels between tiles
PIXEL = np.dtype("V3")  # one RGB pixel as one 3-byte item: a colour lookup is one gather, not three
PLACEHOLDER_RGB = (70, 72, 80)  # stands in for an image the caller did not pass
IMAGE_MODES = ("cells", "heatmap")


def cell_edges(n_cells: int, length: int) -> np.ndarray:
    """(n_cells + 1,) float pixel edges: cell c spans ``[edges[c], edges[c + 1])``, first 0, last ``length``."""
    return np.arange(n_cells + 1) * (length / n_cells)


def coverage(n_cells: int, length: int) -> np.ndarray:
    """(length, n_cells) float64: how much of pixel p (the span [p, p + 1)) lies in cell c; rows sum to 1."""
    edges = cell_edges(n_cells, length)
    px = np.arange(length, dtype=np.float64)
    lo = np.maximum(px[:, None], edges[None, :-1])
    hi = np.minimum(px[:, None] + 1, edges[None, 1:])
    return np.clip(hi - lo, 0.0, None)


def bilinear(n_cells: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """(i0, f), each (length,): pixel centre p lies between cell centres ``i0[p]`` and ``i0[p] + 1``, at
    fraction ``f[p]`` of the way (clamped at the borders); its value is ``(1 - f) * v[i0] + f * v[i0 + 1]``."""
    s = np.clip((np.arange(length) + 0.5) * n_cells / length - 0.5, 0, n_cells - 1)
    i0 = np.minimum(np.floor(s).astype(np.int64), max(n_cells - 2, 0))
    return i0, (s - i0).astype(np.float32)


def interpolate(values: np.ndarray, i0: np.ndarray, f: np.ndarray, axis: int) -> np.ndarray:
    """``values`` resampled along ``axis`` with :func:`bilinear` indices (two gathers, no matrix product)."""
    hi = np.minimum(i0 + 1, values.shape[axis] - 1)
    shape = [1] * values.ndim
    shape[axis] = len(f)
    f = f.reshape(shape)
    return np.take(values, i0, axis=axis) * (1 - f) + np.take(values, hi, axis=axis) * f


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
class Tile:
    x: int  # image's top-left in panel coordinates
    y: int
    base: np.ndarray  # (h, w, 3) uint8: floor(image * (256 - alpha_fp) / 256), the untinted share
    source_size: tuple[int, int]  # (w, h) of the image as given
    rows: np.ndarray  # (h, grid_h) float32: how much of each pixel row lies in each cell row
    cols: np.ndarray  # (w, grid_w) float32: the same for pixel columns
    distinct: np.ndarray = field(init=False)  # (R, grid_h) the different rows of ``rows``
    row_of: np.ndarray = field(init=False)  # (h,) int: which of them each pixel row is
    grid: tuple[np.ndarray, np.ndarray] = field(init=False)  # (ys, xs) of the grid-line pixels

    def __post_init__(self) -> None:
        self.distinct, self.row_of = np.unique(self.rows, axis=0, return_inverse=True)
        self.row_of = self.row_of.ravel()
        (h, grid_h), (w, grid_w) = self.rows.shape, self.cols.shape
        self.grid = grid_pixels(grid_h, grid_w, h, w)

    @property
    def size(self) -> tuple[int, int]:
        return self.base.shape[1], self.base.shape[0]


class ImagePanel:
    """All images of a trace in one panel; :meth:`paint` tints them for one frame."""

    def __init__(
        self,
        images: list[Image.Image | None],
        geometries: list[ImageGeometry],
        width: int,
        height: int,
        fonts: FontSet,
        tint_alpha: float,
        grid_lines: bool,
        mode: str = "cells",
    ):
        if mode not in IMAGE_MODES:
            raise SettingError(f"render.image_mode={mode!r}: use one of {', '.join(IMAGE_MODES)}")
        self.width, self.height, self.grid_lines, self.mode = width, height, grid_lines, mode
        self.alpha_fp = int(round(np.clip(tint_alpha, 0.0, 1.0) * 256))  # tint opacity, 8-bit fixed point
        self.stamps: list[Stamp] = []
        sources = [_source_image(images, g) for g in geometries]
        groups = panel_groups(geometries)  # an image alone, a video's patches together: one tile each
        boxes = tile_boxes([sources[group[0]].size for group in groups], width, height, fonts.line_height)
        canvas = Image.new("RGB", (width, height), BACKGROUND_RGB)
        tiles: dict[int, Tile] = {}  # geometry index -> its tile (a video's patches share one place)
        self.videos: list[VideoSlot] = []
        for group, box in zip(groups, boxes, strict=True):
            if geometries[group[0]].is_video:
                self.videos.append(self._video_tiles(canvas, fonts, geometries, sources, group, box, tiles))
            else:
                tiles[group[0]] = self._tile(canvas, fonts, geometries[group[0]], sources[group[0]], box)
        self.tiles = [tiles[i] for i in range(len(geometries))]
        self.in_video = {i for slot in self.videos for i in slot.members}
        self.static = np.asarray(canvas).copy()  # (H, W, 3) uint8: the panel without tint

    def _video_tiles(self, canvas, fonts, geometries, sources, group: list[int], box, tiles: dict) -> VideoSlot:
        """A tile per temporal patch, all in ``box`` above the video's strip; the first pair's picture is drawn."""
        bx, by, bw, bh = box
        picture_box = (bx, by, bw, max(1, bh - strip_height(fonts) - STRIP_GAP))
        for i in reversed(group):  # the first pair's picture is pasted last: it is the static canvas's
            tiles[i] = self._tile(canvas, fonts, geometries[i], sources[i], picture_box, caption=False)
        first = tiles[group[0]]
        return video_slot(group, geometries, fonts, (first.x, first.y, *first.size), box)

    def _tile(self, canvas: Image.Image, fonts: FontSet, geom: ImageGeometry, im: Image.Image, box,
              caption: bool = True) -> Tile:
        bx, by, bw, bh = box
        w, h = fit_size(im.width, im.height, bw, bh)
        x, y = bx + (bw - w) // 2, by + (bh - h) // 2  # centred in its tile, caption just above
        shown = im.resize((w, h), Image.LANCZOS)
        canvas.paste(shown, (x, y))
        if caption:
            fonts.draw(ImageDraw.Draw(canvas), (x, y - fonts.line_height), _caption(geom, fonts, bw), MUTED_RGB)
        base = ((np.asarray(shown, dtype=np.uint16) * (256 - self.alpha_fp)) >> 8).astype(np.uint8)
        rows = coverage(geom.grid_h, h).astype(np.float32)
        cols = coverage(geom.grid_w, w).astype(np.float32)
        return Tile(x, y, base, im.size, rows, cols)

    def paint(self, view: np.ndarray, weights: list[np.ndarray], lut: np.ndarray, step: int = 0,
              masses: np.ndarray | None = None) -> None:
        """Tint every image. ``view`` (H, W, 3) uint8; ``weights[i]`` (grid_h, grid_w) float in 0..1, NaN for an
        excluded cell; ``lut`` (256, 3) uint8; ``masses`` (G,) each entry's share of the row, which picks the pair
        a video's tile shows (None: its first). Overlay marks due by ``step`` are drawn on top."""
        shown = [i for i in range(len(self.tiles)) if i not in self.in_video]
        for slot in self.videos:
            pick = strongest(masses, slot.members)
            slot.draw(view, pick, masses)
            shown.append(slot.members[pick])
        for i in shown:
            tile, cells = self.tiles[i], weights[i]
            w, h = tile.size
            out = view[tile.y : tile.y + h, tile.x : tile.x + w]
            tint = self._cell_tint(tile, cells, lut) if self.mode == "cells" else self._heat_tint(tile, cells, lut)
            np.add(tile.base, tint, out=out)
            if self.grid_lines:
                _grid(out, tile.grid)
        paint_stamps(view, self.stamps, step)

    def _cell_tint(self, tile: Tile, cells: np.ndarray, lut: np.ndarray) -> np.ndarray:
        """(h, w, 3) uint8 tint share: each pixel the overlap-weighted mix of the cells it covers."""
        colors = cell_colors(cells, lut).astype(np.float32) * (self.alpha_fp / 256)  # (gh, gw, 3)
        by_row = np.tensordot(tile.distinct, colors, axes=(1, 0))  # (R, gw, 3): the different pixel rows
        by_pixel = np.tensordot(by_row, tile.cols, axes=(1, 1))  # (R, 3, w): columns mixed exactly
        rows = np.ascontiguousarray(np.floor(by_pixel + 1e-3).astype(np.uint8).transpose(0, 2, 1))  # (R, w, 3)
        return np.take(rows, tile.row_of, axis=0)  # (h, w, 3) C-contiguous: row copies

    def _heat_tint(self, tile: Tile, cells: np.ndarray, lut: np.ndarray) -> np.ndarray:
        """(h, w, 3) uint8 tint share: cell weights interpolated between cell centres, then colour-mapped."""
        w, h = tile.size
        weights = np.nan_to_num(cells.astype(np.float32))  # (gh, gw)
        heat = interpolate(interpolate(weights, *bilinear(len(weights), h), axis=0), *bilinear(weights.shape[1], w), 1)
        idx = (np.clip(heat, 0.0, 1.0) * (len(lut) - 1) + 0.5).astype(np.uint8)  # (h, w)
        shares = ((lut.astype(np.uint16) * self.alpha_fp) >> 8).astype(np.uint8)  # (256, 3)
        return np.take(np.ascontiguousarray(shares).view(PIXEL).ravel(), idx).view(np.uint8).reshape(h, w, 3)


def cell_colors(cells: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """(gh, gw) weights in 0..1 (NaN: excluded) -> (gh, gw, 3) uint8 colours."""
    excluded = np.isnan(cells)
    idx = np.rint(np.clip(np.nan_to_num(cells), 0.0, 1.0) * (len(lut) - 1)).astype(np.intp)
    colors = lut[idx]
    colors[excluded] = EXCLUDED_RGB
    return colors


def grid_pixels(grid_h: int, grid_w: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(ys, xs) of every pixel on a cell edge (rounded to the nearest pixel), borders included, each once."""
    rows = np.unique(np.clip(np.rint(cell_edges(grid_h, h)).astype(np.int64), 0, h - 1))
    cols = np.unique(np.clip(np.rint(cell_edges(grid_w, w)).astype(np.int64), 0, w - 1))
    on = np.zeros((h, w), dtype=bool)
    on[rows] = True
    on[:, cols] = True
    return np.nonzero(on)


def _grid(out: np.ndarray, pixels: tuple[np.ndarray, np.ndarray]) -> None:
    """Blend the light grid colour over ``pixels`` (ys, xs) of ``out`` (h, w, 3) uint8."""
    g = int(round(GRID_ALPHA * 256))
    line = np.asarray(GRID_RGB, dtype=np.uint16) * g
    out[pixels] = (out[pixels].astype(np.uint16) * (256 - g) + line) >> 8


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
    return geom.view(im.convert("RGB"))  # the part the grid covers (e.g. LLaVA-1.5's centre crop)
