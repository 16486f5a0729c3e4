"""Compose video frames: header, text panel (left half) and image panel (right half), one frame per token.

Frame ``t`` shows generated token ``t`` in blue and colours everything else by ``trace.row(layer, t)``: the
attention of the query that *produced* token ``t`` ("what the model looked at when it wrote the blue token").
All layout and static pixels are prepared once in :class:`FrameRenderer`; a frame only recolours.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageDraw

from attnviz.config import RenderConfig, VideoConfig
from attnviz.render.colors import (
    BACKGROUND_RGB,
    CURRENT_TOKEN_RGB,
    HEADER_RGB,
    MUTED_RGB,
    colormap_lut,
    normalize_weights,
    weights_to_rgb,
)
from attnviz.render.fonts import FontSet, find_font
from attnviz.render.image_panel import ImagePanel
from attnviz.render.text_panel import TextPanel
from attnviz.trace import Trace

log = logging.getLogger(__name__)

MIN_SIZE = 64  # smallest frame side that still lays out
MIN_TEXT_LINES = 6  # a smaller video gets a smaller font, so the text panel shows at least this many lines
MIN_LINE_CHARS = 16  # ... and this many characters per line
MIN_FONT_SIZE = 8
ROW_NOTE = "frame shows the attention that produced the blue token"
SEPARATOR_RGB = (60, 63, 72)
MAX_TOKEN_CHARS = 40  # the header quotes at most this much of the current token


def frame_count(trace: Trace) -> int:
    """Frames in a video of ``trace``: one per generated token."""
    return trace.n_steps


def even_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) rounded down to even numbers: yuv420p needs even sides."""
    if width < MIN_SIZE or height < MIN_SIZE:
        raise ValueError(f"video size {width}x{height} is too small (each side must be >= {MIN_SIZE})")
    return width - width % 2, height - height % 2


def panel_pad(width: int, height: int) -> int:
    """Margin around panels: 16 px at 1080p, less on small videos."""
    return int(np.clip(round(min(width, height) / 60), 4, 16))


def fit_font(font_path: str | None, font_size: int, width: int, height: int) -> FontSet:
    """The configured font, shrunk (to MIN_FONT_SIZE at least) until the text panel of a ``width`` x ``height``
    frame holds MIN_TEXT_LINES lines of MIN_LINE_CHARS characters."""
    pad = panel_pad(width, height)
    for size in range(font_size, min(font_size, MIN_FONT_SIZE) - 1, -1):
        fonts = find_font(font_path, size)
        body_h = height - (2 * fonts.line_height + 2 * pad) - 2 * pad
        line_w = width // 2 - 2 * pad
        if body_h >= MIN_TEXT_LINES * fonts.line_height and line_w >= MIN_LINE_CHARS * fonts.text_width("x"):
            if size < font_size:
                log.info("font size %d -> %d so the text fits a %dx%d video", font_size, size, width, height)
            return fonts
    raise ValueError(f"video size {width}x{height} is too small for readable text: raise video.width/height")


class FrameRenderer:
    """Everything a frame of one (trace, layer) needs, prepared once; :meth:`render` draws frame ``t``."""

    def __init__(
        self,
        trace: Trace,
        layer: int,
        images: list[Image.Image],
        render_cfg: RenderConfig,
        video_cfg: VideoConfig,
        *,
        sample_id: str,
        text_start: int,
    ):
        if layer not in trace.rows:
            raise KeyError(f"layer {layer} is not in the trace (captured layers: {trace.layers})")
        self.trace, self.layer, self.sample_id = trace, layer, sample_id
        self.width, self.height = even_size(video_cfg.width, video_cfg.height)
        self.fonts = fit_font(render_cfg.font_path, render_cfg.font_size, self.width, self.height)
        self.pad = pad = panel_pad(self.width, self.height)
        self.lut = colormap_lut(render_cfg.colormap)  # (256, 3) uint8
        self.gamma = render_cfg.gamma
        kinds = trace.token_kinds
        self.positions = np.array(  # (N,) sequence positions of the text panel's tokens
            [p for p in range(max(0, text_start), len(kinds)) if kinds[p] != "image"], dtype=np.int64
        )
        self.image_positions = np.concatenate(  # (I,) every image token, all images
            [np.asarray(g.positions, dtype=np.int64) for g in trace.images] or [np.zeros(0, np.int64)]
        )
        lh = self.fonts.line_height
        self.header_h = 2 * lh + 2 * pad
        body_h = self.height - self.header_h - 2 * pad
        half = self.width // 2
        self.text_origin = (pad, self.header_h + pad)  # (x, y)
        self.image_origin = (half + pad, self.header_h + pad)
        texts = [trace.token_texts[p] for p in self.positions]
        self.text = TextPanel(texts, self.fonts, half - 2 * pad, body_h)
        self.image = ImagePanel(
            images,
            trace.images,
            self.width - half - 2 * pad,
            body_h,
            self.fonts,
            render_cfg.tint_alpha,
            render_cfg.grid_lines,
        )
        self.static = self._static_frame()  # (H, W, 3) uint8

    def _static_frame(self) -> np.ndarray:
        """Background, separators, the row note, the colour legend and the untinted images."""
        canvas = Image.new("RGB", (self.width, self.height), BACKGROUND_RGB)
        draw = ImageDraw.Draw(canvas)
        lh, half, pad = self.fonts.line_height, self.width // 2, self.pad
        draw.line([(0, self.header_h - 1), (self.width, self.header_h - 1)], fill=SEPARATOR_RGB, width=2)
        draw.line([(half, self.header_h), (half, self.height)], fill=SEPARATOR_RGB, width=2)
        self.fonts.draw(draw, (pad, pad + lh), ROW_NOTE, MUTED_RGB)
        note_end = pad + round(self.fonts.text_width(ROW_NOTE)) + 3 * pad
        _legend(canvas, self.lut, self.fonts, left=note_end, right=self.width - pad, top=pad + lh)
        frame = np.asarray(canvas).copy()
        x, y = self.image_origin
        frame[y : y + self.image.height, x : x + self.image.width] = self.image.static
        return frame

    def render(self, t: int) -> np.ndarray:
        """(H, W, 3) uint8 frame of generated token ``t`` (0-based)."""
        row = self.trace.row(self.layer, t)  # (prompt_len + t,) attention that produced token t
        frame = self.static.copy()
        self._paint_text(frame, row, self.trace.prompt_len + t)
        self._paint_images(frame, row)
        self._paint_header(frame, t)
        return frame

    def _paint_text(self, frame: np.ndarray, row: np.ndarray, current_pos: int) -> None:
        shown = int(np.searchsorted(self.positions, current_pos, side="right"))  # tokens up to current
        if shown == 0:
            return
        is_current = self.positions[shown - 1] == current_pos
        before = shown - 1 if is_current else shown
        colors = np.empty((shown, 3), dtype=np.uint8)  # (shown, 3) one colour per shown token
        weights = normalize_weights(row[self.positions[:before]], self.gamma)  # (before,) in 0..1
        colors[:before] = weights_to_rgb(weights, self.lut)
        if is_current:
            colors[shown - 1] = CURRENT_TOKEN_RGB
        self.text.paint(frame, self.text_origin, colors, shown - 1, mark_current=bool(is_current))

    def _paint_images(self, frame: np.ndarray, row: np.ndarray) -> None:
        if not self.trace.images:
            return
        # all images are normalised jointly so their colours compare, then split per image
        joint = np.zeros(len(row), dtype=np.float32)
        joint[self.image_positions] = normalize_weights(row[self.image_positions], self.gamma)
        cells = [weights_to_rgb(g.cell_weights(joint), self.lut) for g in self.trace.images]
        x, y = self.image_origin
        self.image.paint(frame[y : y + self.image.height, x : x + self.image.width], cells)

    def _paint_header(self, frame: np.ndarray, t: int) -> None:
        """The first header line changes every frame: drawn small with PIL, then copied in."""
        lh = self.fonts.line_height
        pad = self.pad
        strip = Image.new("RGB", (self.width - 2 * pad, lh), BACKGROUND_RGB)
        token = _quote(self.trace.token_texts[self.trace.prompt_len + t])
        step = f"{t + 1}/{self.trace.n_steps}"
        text = f"sample {self.sample_id} · layer {self.layer} · step {step} · writing "
        if self.fonts.text_width(text + token) > strip.width:  # small video: the short form
            text = f"{self.sample_id} · L{self.layer} · {step} · "
        draw = ImageDraw.Draw(strip)
        self.fonts.draw(draw, (0, 0), text, HEADER_RGB)
        self.fonts.draw(draw, (self.fonts.text_width(text), 0), token, CURRENT_TOKEN_RGB)
        frame[pad : pad + lh, pad : self.width - pad] = np.asarray(strip)


def render_frames(
    trace: Trace,
    layer: int,
    images: list[Image.Image],
    render_cfg: RenderConfig,
    video_cfg: VideoConfig,
    *,
    sample_id: str,
    text_start: int,
) -> Iterator[np.ndarray]:
    """Frames (H, W, 3) uint8, one per generated token, produced lazily (never all in memory).

    Layout and fonts are prepared here, so a bad layer or font fails before the first frame is asked for.
    """
    renderer = FrameRenderer(trace, layer, images, render_cfg, video_cfg, sample_id=sample_id, text_start=text_start)
    return (renderer.render(t) for t in range(frame_count(trace)))


def _quote(text: str) -> str:
    """A token as the header shows it: escapes visible, long tokens shortened."""
    shown = text.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    if len(shown) > MAX_TOKEN_CHARS:
        shown = shown[: MAX_TOKEN_CHARS - 1] + "…"
    return f'"{shown}"'


def _legend(canvas: Image.Image, lut: np.ndarray, fonts: FontSet, left: int, right: int, top: int) -> None:
    """Right-aligned on a header line: ``low [gradient] high  ▮ being written``; left out if it won't fit."""
    lh, bar_w = fonts.line_height, 160
    bar_h = max(4, lh // 2)
    labels = ("low", "high", "being written")
    widths = [round(fonts.text_width(s)) for s in labels]
    x = right - (widths[0] + bar_w + widths[1] + 2 * 10 + 24 + bar_h + 10 + widths[2])
    if x < left:
        return
    draw = ImageDraw.Draw(canvas)
    fonts.draw(draw, (x, top), labels[0], MUTED_RGB)
    x += widths[0] + 10
    bar_y = top + (fonts.ascent - bar_h) // 2 + 2
    ramp = lut[np.linspace(0, len(lut) - 1, bar_w).astype(np.intp)]  # (bar_w, 3)
    canvas.paste(Image.fromarray(np.repeat(ramp[None], bar_h, axis=0)), (x, bar_y))
    x += bar_w + 10
    fonts.draw(draw, (x, top), labels[1], MUTED_RGB)
    x += widths[1] + 24
    draw.rectangle([x, bar_y, x + bar_h, bar_y + bar_h], fill=CURRENT_TOKEN_RGB)
    fonts.draw(draw, (x + bar_h + 10, top), labels[2], MUTED_RGB)
