"""Compose video frames: header, text panel (left half) and image panel (right half), one frame per token.

Frame ``t`` shows generated token ``t`` in blue and colours everything else by the row that *produced* token
``t`` ("what the model looked at when it wrote the blue token"). Layout, glyphs, images and overlay marks are
prepared once in :class:`FrameRenderer`; a frame recolours the tokens in view and the image cells, and redraws
one header line, in a buffer that is reused from frame to frame.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageDraw

from attnviz.analysis import image_positions, segment_labels
from attnviz.errors import SettingError
from attnviz.render.colors import BACKGROUND_RGB, CURRENT_TOKEN_RGB, EXCLUDED_RGB, POINT_RGB, TRUTH_RGB, colormap_lut
from attnviz.render.fonts import FontSet, find_font
from attnviz.render.header import draw_static, frame_line, settings_note
from attnviz.render.image_panel import ImagePanel
from attnviz.render.marks import point_stamps
from attnviz.render.overlays import completion_steps, parse_points, place_points
from attnviz.render.text_panel import TextPanel
from attnviz.render.weights import RowSource, Weigher
from attnviz.schema import ImageWeights, RenderConfig, VideoConfig
from attnviz.sinks import sink_mask
from attnviz.trace import Trace

log = logging.getLogger(__name__)

MIN_SIZE = 64  # smallest frame side that still lays out
MIN_TEXT_LINES = 6  # a smaller video gets a smaller font, so the text panel shows at least this many lines
MIN_LINE_CHARS = 16  # ... and this many characters per line
MIN_FONT_SIZE = 8
SEPARATOR_RGB = (60, 63, 72)


def frame_count(trace: Trace) -> int:
    """Frames in a video of ``trace``: one per generated token."""
    return trace.n_steps


def even_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) rounded down to even numbers: yuv420p needs even sides."""
    if width < MIN_SIZE or height < MIN_SIZE:
        raise SettingError(f"video size {width}x{height} is too small (each side must be >= {MIN_SIZE})")
    return width - width % 2, height - height % 2


def panel_pad(width: int, height: int) -> int:
    """Margin around panels: 16 px at 1080p, less on small videos."""
    return int(np.clip(round(min(width, height) / 60), 4, 16))


def fit_font(cfg: RenderConfig, width: int, height: int) -> FontSet:
    """The configured font, shrunk (to MIN_FONT_SIZE at least) until the text panel of a ``width`` x ``height``
    frame holds MIN_TEXT_LINES lines of MIN_LINE_CHARS characters."""
    pad = panel_pad(width, height)
    cjk = cfg.cjk_font_path
    for size in range(cfg.font_size, min(cfg.font_size, MIN_FONT_SIZE) - 1, -1):
        fonts = find_font(cfg.font_path, size, cjk)
        body_h = height - (2 * fonts.line_height + 2 * pad) - 2 * pad
        line_w = width // 2 - 2 * pad
        if body_h >= MIN_TEXT_LINES * fonts.line_height and line_w >= MIN_LINE_CHARS * fonts.text_width("x"):
            if size < cfg.font_size:
                log.info("font size %d -> %d so the text fits a %dx%d video", cfg.font_size, size, width, height)
            return fonts
    raise SettingError(f"video size {width}x{height} is too small for readable text: raise video.width/height")


def image_divisor(trace: Trace, layer: int, cfg: RenderConfig) -> np.ndarray | None:
    """(I,) the generic-prompt baseline per image token for ``render.image_weights=relative``, else None."""
    if cfg.image_weights != ImageWeights.relative:
        return None
    if layer not in trace.baseline:
        raise SettingError(
            f"render.image_weights=relative needs the generic-prompt baseline of layer {layer}: generate the run "
            "with metrics.baseline=generic"
        )
    return trace.baseline[layer]


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
        ground_truth: str | None = None,
    ):
        self.trace, self.layer, self.sample_id, self.cfg = trace, layer, sample_id, render_cfg
        source = RowSource(trace, layer, render_cfg.heads)
        self.width, self.height = even_size(video_cfg.width, video_cfg.height)
        self.fonts = fit_font(render_cfg, self.width, self.height)
        self.pad = pad = panel_pad(self.width, self.height)
        self.lut = colormap_lut(render_cfg.colormap)  # (256, 3) uint8
        kinds = trace.token_kinds
        self.positions = np.array(  # (N,) sequence positions of the text panel's tokens
            [p for p in range(max(0, text_start), len(kinds)) if kinds[p] != "image"], dtype=np.int64
        )
        self.excluded = sink_mask(
            trace.token_texts, kinds, render_cfg.exclude, render_cfg.exclude_positions, chat=trace.chat_format
        )
        self.any_excluded = bool(self.excluded.any())
        self.weigher = Weigher(
            source, self.positions, image_positions(trace.images), self.excluded,
            render_cfg.norm, render_cfg.gamma, render_cfg.log_decades, image_divisor(trace, layer, render_cfg),
        )
        lh = self.fonts.line_height
        self.header_h = 2 * lh + 2 * pad
        body_h = self.height - self.header_h - 2 * pad
        half = self.width // 2
        self.text_origin = (pad, self.header_h + pad)  # (x, y)
        self.image_origin = (half + pad, self.header_h + pad)
        self.text = TextPanel([trace.token_texts[p] for p in self.positions], self.fonts, half - 2 * pad, body_h)
        self.image = ImagePanel(
            images, trace.images, self.width - half - 2 * pad, body_h, self.fonts,
            render_cfg.tint_alpha, render_cfg.grid_lines, render_cfg.image_mode,
        )
        generated = trace.token_texts[trace.prompt_len :]
        overlay = render_cfg.overlay
        self.segments = segment_labels(generated) if overlay.segments else [""] * len(generated)
        if overlay.enabled:
            self.image.stamps = self._overlay_stamps(generated, ground_truth)
        self.static = self._static_frame()  # (H, W, 3) uint8
        self.buffer = self.static.copy()  # the frame being drawn, reused

    def _static_frame(self) -> np.ndarray:
        """Background, separators, the row note, the colour legend and the untinted images."""
        canvas = Image.new("RGB", (self.width, self.height), BACKGROUND_RGB)
        draw = ImageDraw.Draw(canvas)
        half = self.width // 2
        draw.line([(0, self.header_h - 1), (self.width, self.header_h - 1)], fill=SEPARATOR_RGB, width=2)
        draw.line([(half, self.header_h), (half, self.height)], fill=SEPARATOR_RGB, width=2)
        cfg = self.cfg
        relative = self.weigher.image_factor is not None
        note = settings_note(self.weigher.source.heads, cfg.norm, cfg.gamma, cfg.log_decades, relative)
        draw_static(canvas, self.fonts, self.lut, self.pad, note, sinks=self.any_excluded)
        frame = np.asarray(canvas).copy()
        x, y = self.image_origin
        frame[y : y + self.image.height, x : x + self.image.width] = self.image.static
        return frame

    def _overlay_stamps(self, generated: list[str], ground_truth: str | None) -> list:
        """Marks for the coordinates in the answer (from the frame that completes them) and the ground truth."""
        cfg, trace = self.cfg.overlay, self.trace
        sizes = [t.source_size for t in self.image.tiles]
        boxes = [(t.x, t.y, *t.size) for t in self.image.tiles]
        points = parse_points("".join(generated), cfg.regex)
        placed, off = place_points(points, completion_steps(generated, points), trace.images, sizes, cfg.space)
        truth = parse_points(ground_truth or "", cfg.regex)
        truth_placed, truth_off = place_points(truth, [0] * len(truth), trace.images, sizes, cfg.space)
        if off or truth_off:
            log.warning(
                "%d coordinate(s) fall outside the images in render.overlay.space=%s and are not drawn: %s",
                len(off) + len(truth_off), cfg.space, [(p.image + 1, p.x, p.y) for p in off + truth_off][:5],
            )
        truth_marks = point_stamps(truth_placed, boxes, TRUTH_RGB, "cross")
        return truth_marks + point_stamps(placed, boxes, POINT_RGB, "ring")

    def render(self, t: int) -> np.ndarray:
        """(H, W, 3) uint8 frame of generated token ``t`` (0-based); a new array the caller may keep."""
        return self.render_into(t).copy()

    def render_into(self, t: int) -> np.ndarray:
        """Frame ``t`` drawn into the reused buffer (valid until the next call): no per-frame allocation."""
        frame = self.buffer
        weights = self.weigher.at(t)
        self._paint_text(frame, weights.text, self.trace.prompt_len + t)
        self._paint_images(frame, weights.image, t, weights.image_raw)
        share = weights.excluded_share if self.any_excluded else None
        self._paint_header(frame, t, share)
        return frame

    def _paint_text(self, frame: np.ndarray, text_weights: np.ndarray, current_pos: int) -> None:
        """``text_weights`` (before,) in 0..1, NaN for an excluded token."""
        x0, y0 = self.text_origin
        panel = (slice(y0, y0 + self.text.height), slice(x0, x0 + self.text.width))
        frame[panel] = self.static[panel]  # the panel is repainted from plain background
        shown = int(np.searchsorted(self.positions, current_pos, side="right"))  # tokens up to current
        if shown == 0:
            return
        before = len(text_weights)
        is_current = before < shown
        colors = np.empty((shown, 3), dtype=np.uint8)  # (shown, 3) one colour per shown token
        idx = np.rint(np.clip(np.nan_to_num(text_weights), 0, 1) * (len(self.lut) - 1)).astype(np.intp)
        colors[:before] = self.lut[idx]
        colors[:before][np.isnan(text_weights)] = EXCLUDED_RGB
        if is_current:
            colors[shown - 1] = CURRENT_TOKEN_RGB
        self.text.paint(frame, self.text_origin, colors, shown - 1, mark_current=is_current)

    def _paint_images(self, frame: np.ndarray, image_weights: np.ndarray, t: int, raw: np.ndarray | None) -> None:
        """``image_weights`` (I,) scaled and ``raw`` (I,) unscaled weights of every image token, images in order."""
        if not self.trace.images:
            return
        cells, at = [], 0
        for g in self.trace.images:  # image_weights holds all images' tokens in order
            cells.append(image_weights[at : at + g.n_tokens].reshape(g.grid_h, g.grid_w))
            at += g.n_tokens
        masses = None  # (G,) each entry's attention: picks the pair a video's tile shows
        if self.image.videos and raw is not None:
            starts = np.cumsum([0] + [g.n_tokens for g in self.trace.images[:-1]])
            masses = np.add.reduceat(np.clip(raw.astype(np.float64), 0.0, None), starts)
        x, y = self.image_origin
        self.image.paint(frame[y : y + self.image.height, x : x + self.image.width], cells, self.lut, t, masses)

    def _paint_header(self, frame: np.ndarray, t: int, share: float | None) -> None:
        pad, lh = self.pad, self.fonts.line_height
        frame[pad : pad + lh, pad : self.width - pad] = frame_line(
            self.fonts, self.width - 2 * pad, sample_id=self.sample_id, layer=self.layer, step=t,
            total=self.trace.n_steps, token=self.trace.token_texts[self.trace.prompt_len + t],
            segment=self.segments[t], sinks=share,
        )


def render_frames(
    trace: Trace,
    layer: int,
    images: list[Image.Image],
    render_cfg: RenderConfig,
    video_cfg: VideoConfig,
    *,
    sample_id: str,
    text_start: int,
    ground_truth: str | None = None,
    reuse_buffer: bool = False,
) -> Iterator[np.ndarray]:
    """Frames (H, W, 3) uint8, one per generated token, produced lazily (never all in memory).

    ``reuse_buffer``: every frame is the same array, redrawn (for a consumer that uses each frame at once, such as
    the video writer); otherwise each frame is a new array. Layout and fonts are prepared here, so a bad layer,
    font or setting fails before the first frame is asked for.
    """
    renderer = FrameRenderer(
        trace, layer, images, render_cfg, video_cfg,
        sample_id=sample_id, text_start=text_start, ground_truth=ground_truth,
    )
    draw = renderer.render_into if reuse_buffer else renderer.render
    return (draw(t) for t in range(frame_count(trace)))
