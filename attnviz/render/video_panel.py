"""A video in the image panel: one tile for all its temporal patches (pairs of frames), showing per frame the pair
with the most attention.

A video's patches are geometry entries like images (:class:`attnviz.trace.ImageGeometry` with ``video`` set), so
every cell keeps its own weight and colour scale; the MP4 cannot show them all at a readable size, so its tile
shows, at each step, the pair whose cells hold the largest share of the row (ties: the earliest), captioned
``frames 5–6 of 16 · 2.0 s``, with a strip of bars under it: one bar per pair, its height that pair's attention
relative to the strongest pair's, the shown pair highlighted. The viewer page shows every pair (a frame slider).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from attnviz.render.colors import BACKGROUND_RGB, CURRENT_TOKEN_RGB, MUTED_RGB
from attnviz.render.fonts import FontSet
from attnviz.trace import ImageGeometry

STRIP_GAP = 2  # pixels between the picture and the strip, and between bars


def panel_groups(geometries: Sequence[ImageGeometry]) -> list[list[int]]:
    """Geometry indices per tile: each image alone, a video's patches (consecutive entries) together."""
    groups: list[list[int]] = []
    for i, g in enumerate(geometries):
        if g.is_video and groups and geometries[groups[-1][0]].video == g.video:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def strongest(masses: np.ndarray | None, members: Sequence[int]) -> int:
    """Position in ``members`` of the pair with the most attention (``masses``: (G,) per geometry entry); the first
    pair when no masses are given."""
    if masses is None:
        return 0
    return int(np.argmax(np.nan_to_num(np.asarray(masses, dtype=np.float64)[list(members)], nan=-1.0)))


def strip_pixels(values: np.ndarray, shown: int, width: int, height: int) -> np.ndarray:
    """(height, width, 3) uint8: one bar per value, scaled to the largest, bar ``shown`` in the current colour."""
    out = np.empty((height, width, 3), dtype=np.uint8)
    out[:] = BACKGROUND_RGB
    values = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64)), 0.0, None)
    top = values.max() if len(values) else 0.0
    edges = np.rint(np.arange(len(values) + 1) * width / max(len(values), 1)).astype(int)
    for i, value in enumerate(values):
        bar_h = max(1, round(height * value / top)) if top > 0 else 1
        left, right = edges[i], max(edges[i] + 1, edges[i + 1] - STRIP_GAP)
        out[height - bar_h :, left:right] = CURRENT_TOKEN_RGB if i == shown else MUTED_RGB
    return out


def caption_pixels(text: str, fonts: FontSet, width: int) -> np.ndarray:
    """(line_height, width, 3) uint8: ``text`` on the panel background, cut at ``width``."""
    canvas = Image.new("RGB", (max(1, width), fonts.line_height), BACKGROUND_RGB)
    fonts.draw(ImageDraw.Draw(canvas), (0, 0), text, MUTED_RGB)
    return np.asarray(canvas).copy()


def video_caption(geom: ImageGeometry, fonts: FontSet, width: int) -> str:
    """The longest caption that fits: ``video 1 · frames 5–6 of 16 · 2.0 s``, shorter forms after it."""
    full = geom.label()
    options = (f"video {(geom.video or 0) + 1} · {full}", full, full.split(" of ")[0])
    return next((c for c in options if fonts.text_width(c) <= width), options[-1])


@dataclass
class VideoSlot:
    """A video's tile: which geometry entries it shows, its captions per pair and where its strip lies."""

    members: list[int]  # geometry indices of the video's patches, time order
    captions: list[np.ndarray]  # per member (line_height, w, 3) uint8, drawn at caption_xy
    caption_xy: tuple[int, int]  # panel coordinates of the caption's top-left
    strip: tuple[int, int, int, int]  # (x, y, w, h) of the strip in panel coordinates

    def draw(self, view: np.ndarray, shown: int, masses: np.ndarray | None) -> None:
        """The shown pair's caption and the strip, into ``view`` (the panel, (H, W, 3) uint8)."""
        x, y = self.caption_xy
        caption = self.captions[shown]
        view[y : y + caption.shape[0], x : x + caption.shape[1]] = caption
        sx, sy, sw, sh = self.strip
        values = np.ones(len(self.members)) if masses is None else np.asarray(masses)[self.members]
        view[sy : sy + sh, sx : sx + sw] = strip_pixels(values, shown, sw, sh)


def video_slot(members: list[int], geometries: Sequence[ImageGeometry], fonts: FontSet,
               picture: tuple[int, int, int, int], box: tuple[int, int, int, int]) -> VideoSlot:
    """``picture``: (x, y, w, h) of the pictures in the panel, inside the tile ``box`` (x, y, w, h); the caption line
    above the picture (to the box's right edge), the strip just below it."""
    x, y, w, h = picture
    width = max(1, box[0] + box[2] - x)
    captions = [caption_pixels(video_caption(geometries[i], fonts, width), fonts, width) for i in members]
    strip_h = strip_height(fonts)
    return VideoSlot(members, captions, (x, y - fonts.line_height), (x, y + h + STRIP_GAP, w, strip_h))


def strip_height(fonts: FontSet) -> int:
    return max(4, fonts.line_height // 2)
