"""``compare_layer{L}.mp4``: the compared checkpoints one above the other, then their differences; a frame a step.

Layout (``video.width`` x ``video.height``): the header (per frame: sample, layer, step, the token being written;
static: the row note and the colour legend), then one horizontal band per model (reference first) and one band per
non-reference model for ``model − reference``. A band is a label column (name, layer, correct or not; per frame the
row's image share off the sinks, or for a difference the step's JS divergence), the text panel (the answer scrolls
in as in the single-run video) and the image panel(s). At 1280x720 two models give three bands of 212 px, five
lines of text at the default font; three models give five bands of 128 px (four lines at a smaller font: it
shrinks, down to MIN_FONT_SIZE, until a band holds MIN_BAND_LINES lines).

Colours: model bands exactly as the single-run video (:mod:`attnviz.render`: the row's weights, its normalisation,
gamma and colour map, render.exclude sinks grey and off the scale). Difference bands: ``d = shares_model −
shares_reference`` of the non-sink weight (:mod:`attnviz.comparison`), on a symmetric scale per panel kind (text,
images) fixed for the whole video, through the diverging map DIVERGING (blue: less than the reference, light grey:
the same, red: more). Differences use head-mean rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from attnviz import comparison as cmp
from attnviz.analysis import segment_labels
from attnviz.compare.layout import cut_to_width, fit_layout
from attnviz.render.colors import (
    BACKGROUND_RGB,
    CURRENT_TOKEN_RGB,
    EXCLUDED_RGB,
    HEADER_RGB,
    MUTED_RGB,
    POINT_RGB,
    TRUTH_RGB,
    colormap_lut,
)
from attnviz.render.frames import SEPARATOR_RGB, even_size, image_divisor
from attnviz.render.header import ROW_NOTE, frame_line, legend, settings_note
from attnviz.render.image_panel import ImagePanel
from attnviz.render.marks import point_stamps
from attnviz.render.overlays import completion_steps, parse_points, place_points
from attnviz.render.text_panel import TextPanel
from attnviz.render.weights import RowSource, Weigher
from attnviz.schema import RenderConfig, VideoConfig
from attnviz.trace import Trace
from attnviz.video import write_video

VIDEO_NAME = "compare_layer{layer}.mp4"
DIVERGING = "coolwarm"  # mid-luminance ends and a light neutral: both signs stay readable on the dark panels



def compare_video_name(layer: int) -> str:
    return VIDEO_NAME.format(layer=layer)


@dataclass(frozen=True)
class Model:  # one compared model as its band shows it
    trace: Trace
    label: str
    layer: int  # the layer of this model drawn (the reference layer's match)
    correct: bool | None


class CompareFrames:
    """Everything a comparison frame needs, prepared once; :meth:`render_into` draws frame ``t``."""

    def __init__(self, models: list[Model], keys: cmp.CompareKeys, images: list[Image.Image], render_cfg: RenderConfig,
                 video_cfg: VideoConfig, *, sample_id: str, ground_truth: str | None = None):
        self.models, self.keys, self.cfg, self.sample_id = models, keys, render_cfg, sample_id
        self.ref = models[0].trace
        self.width, self.height = even_size(video_cfg.width, video_cfg.height)
        aspect = sum(g.pixel_w / g.pixel_h for g in self.ref.images)
        self.lay = lay = fit_layout(render_cfg, self.width, self.height, 2 * len(models) - 1, aspect)
        self.n_label_lines = max(1, lay.body_h // lay.fonts.line_height)  # the last one changes per frame
        self.lut, self.diverging = colormap_lut(render_cfg.colormap), colormap_lut(DIVERGING)
        self.text = TextPanel([self.ref.token_texts[p] for p in keys.text], lay.fonts, lay.text_w, lay.body_h)
        self.image = ImagePanel(images, self.ref.images, lay.image_w, lay.body_h, lay.captions, render_cfg.tint_alpha,
                                render_cfg.grid_lines, render_cfg.image_mode) if lay.image_w else None
        if self.image is not None and render_cfg.overlay.enabled:
            self.image.stamps = self._overlay_stamps(ground_truth)
        self.weighers = [self._weigher(m) for m in models]
        self.shares = [cmp.image_share_steps(m.trace, m.layer, keys) for m in models]  # (T,) per model, off the sinks
        ref_layer = models[0].layer
        self.scales = [cmp.difference_scales(self.ref, m.trace, ref_layer, m.layer, keys) for m in models[1:]]
        self.js = [cmp.js_steps(self.ref, m.trace, ref_layer, m.layer) for m in models[1:]]
        generated = self.ref.token_texts[self.ref.prompt_len :]
        self.segments = segment_labels(generated) if render_cfg.overlay.segments else [""] * len(generated)
        self.static = self._static_frame()
        self.buffer = self.static.copy()

    def _weigher(self, m: Model) -> Weigher:
        cfg = self.cfg
        return Weigher(RowSource(m.trace, m.layer, cfg.heads), self.keys.text, self.keys.image, self.keys.sinks,
                       cfg.norm, cfg.gamma, cfg.log_decades, image_divisor(m.trace, m.layer, cfg))

    def _overlay_stamps(self, ground_truth: str | None) -> list:
        """The ground truth (crosses) and the coordinates the answer writes (rings, from the step that ends them)."""
        overlay, tiles = self.cfg.overlay, self.image.tiles
        sizes, boxes = [t.source_size for t in tiles], [(t.x, t.y, *t.size) for t in tiles]
        generated = self.ref.token_texts[self.ref.prompt_len :]
        points = parse_points("".join(generated), overlay.regex)
        placed, _ = place_points(points, completion_steps(generated, points), self.ref.images, sizes, overlay.space)
        truth = parse_points(ground_truth or "", overlay.regex)
        truth_placed, _ = place_points(truth, [0] * len(truth), self.ref.images, sizes, overlay.space)
        return point_stamps(truth_placed, boxes, TRUTH_RGB, "cross") + point_stamps(placed, boxes, POINT_RGB, "ring")

    def band_top(self, i: int) -> int:
        return self.lay.header_h + i * self.lay.band_h

    def text_origin(self, i: int) -> tuple[int, int]:
        return self.lay.label_w + self.lay.pad, self.band_top(i) + self.lay.pad

    def image_origin(self, i: int) -> tuple[int, int]:
        x, y = self.text_origin(i)
        return x + self.lay.text_w + self.lay.pad, y

    def label_lines(self, i: int) -> list[str]:
        """The static lines of band ``i``'s label column (models first, then the differences)."""
        n = len(self.models)
        if i < n:
            m = self.models[i]
            verdict = {True: "answer right", False: "answer wrong"}.get(m.correct, "")
            return [m.label, f"layer {m.layer}", verdict, "reference" if i == 0 else ""]
        m, (text_s, image_s) = self.models[i - n + 1], self.scales[i - n]
        if self.n_label_lines < 5:  # a short band: both scales on one line
            return [f"Δ {m.label}", "", f"t±{text_s:.2g} i±{image_s:.2g}"]
        minus = [f"− {self.models[0].label}"] if self.n_label_lines > 5 else []  # "Δ B", "− A": B − A
        return [f"Δ {m.label}", *minus, "", f"text ±{text_s:.3g}", f"image ±{image_s:.3g}"]

    def _static_frame(self) -> np.ndarray:
        lay = self.lay
        canvas = Image.new("RGB", (self.width, self.height), BACKGROUND_RGB)
        draw = ImageDraw.Draw(canvas)
        draw.line([(0, lay.header_h - 1), (self.width, lay.header_h - 1)], fill=SEPARATOR_RGB, width=2)
        self._draw_legend_line(canvas)
        for i in range(2 * len(self.models) - 1):
            top = self.band_top(i)
            if i:
                draw.line([(0, top), (self.width, top)], fill=SEPARATOR_RGB, width=1 if i != len(self.models) else 3)
            self._draw_label(canvas, draw, i)
        frame = np.asarray(canvas).copy()
        if self.image is not None:
            for i in range(2 * len(self.models) - 1):
                x, y = self.image_origin(i)
                frame[y : y + self.image.height, x : x + self.image.width] = self.image.static
        return frame

    def _draw_legend_line(self, canvas: Image.Image) -> None:
        """Header line 2: what the bands show (the longest note that fits) and the models' colour legend."""
        fonts, pad, cfg = self.lay.fonts, self.lay.pad, self.cfg
        top, right, sinks = pad + fonts.line_height, self.width - pad, bool(self.keys.sinks.any())
        room = right - pad - legend(canvas, self.lut, fonts, None, right, top, sinks, measure=True) - 2 * pad
        how = settings_note(self.weighers[0].source.heads, cfg.norm, cfg.gamma, cfg.log_decades)
        options = (f"{ROW_NOTE} · models: {how} · Δ: model − reference", f"{ROW_NOTE} · Δ: model − reference",
                   "rows that produced the blue token · Δ: model − reference", "Δ: model − reference", "")
        note = next(t for t in options if fonts.text_width(t) <= room)
        fonts.draw(ImageDraw.Draw(canvas), (pad, top), note, MUTED_RGB)
        legend(canvas, self.lut, fonts, pad + fonts.text_width(note) + 2 * pad, right, top, sinks)

    def _draw_label(self, canvas: Image.Image, draw: ImageDraw.ImageDraw, i: int) -> None:
        lay, lh = self.lay, self.lay.fonts.line_height
        x, top, room = lay.pad, self.band_top(i) + lay.pad, lay.label_w - 2 * lay.pad
        lines = self.label_lines(i)[: self.n_label_lines - 1]
        for k, line in enumerate(lines):
            fill = HEADER_RGB if k == 0 else MUTED_RGB
            if line:
                lay.fonts.draw(draw, (x, top + k * lh), cut_to_width(lay.fonts, line, room), fill)
        if i >= len(self.models) and "" in lines[1:]:  # a difference's legend bar: −s (blue) … 0 … +s (red)
            bar_h = max(4, lh // 2)
            y = top + lines.index("", 1) * lh + (lh - bar_h) // 2
            ramp = self.diverging[np.linspace(0, len(self.diverging) - 1, room).astype(np.intp)]  # (room, 3)
            canvas.paste(Image.fromarray(np.repeat(ramp[None], bar_h, axis=0)), (x, y))

    def render_into(self, t: int) -> np.ndarray:
        """Frame ``t`` drawn into the reused buffer (valid until the next call)."""
        frame, n = self.buffer, len(self.models)
        for i in range(n):
            weights = self.weighers[i].at(t)
            self._paint_band(frame, i, weights.text, weights.image, self.lut, t, weights.image_raw)
            self._label_value(frame, i, f"image {100 * self.shares[i][t]:.0f}%")
        ref_layer = self.models[0].layer
        for k, m in enumerate(self.models[1:]):
            d = cmp.step_difference(self.ref, m.trace, ref_layer, m.layer, self.keys.sinks, t)  # (P + t,)
            n_before = self.weighers[0].n_before(t)
            text_s, image_s = self.scales[k]
            text = cmp.diverging_positions(d[self.keys.text[:n_before]], text_s, self.cfg.gamma)
            image = cmp.diverging_positions(d[self.keys.image], image_s, self.cfg.gamma)
            self._paint_band(frame, n + k, text, image, self.diverging, t, np.abs(d[self.keys.image]))
            js = self.js[k][t]
            self._label_value(frame, n + k, "JS –" if np.isnan(js) else f"JS {js:.2f}")
        self._paint_header(frame, t)
        return frame

    def _paint_band(self, frame: np.ndarray, i: int, text: np.ndarray, image: np.ndarray, lut: np.ndarray,
                    t: int, mass: np.ndarray | None = None) -> None:
        """``text`` (n_before,) and ``image`` (I,) colour positions in 0..1, NaN for a sink; ``mass`` (I,) what picks
        the frame pair a video's tile shows (a model's own weights; for a difference, its size)."""
        x0, y0 = self.text_origin(i)
        panel = (slice(y0, y0 + self.text.height), slice(x0, x0 + self.text.width))
        frame[panel] = self.static[panel]
        current = self.ref.prompt_len + t
        shown = int(np.searchsorted(self.keys.text, current, side="right"))
        if shown:
            before = len(text)
            colors = np.empty((shown, 3), dtype=np.uint8)  # (shown, 3)
            colors[:before] = lut[np.rint(np.clip(np.nan_to_num(text), 0, 1) * (len(lut) - 1)).astype(np.intp)]
            colors[:before][np.isnan(text)] = EXCLUDED_RGB
            if before < shown:
                colors[shown - 1] = CURRENT_TOKEN_RGB
            self.text.paint(frame, (x0, y0), colors, shown - 1, mark_current=before < shown)
        if self.image is not None:
            if lut is self.diverging and self.cfg.image_mode == "heatmap":
                image = np.where(np.isnan(image), 0.5, image)  # heatmaps know no grey: a sink reads "no change"
            cells, at = [], 0
            for g in self.ref.images:
                cells.append(image[at : at + g.n_tokens].reshape(g.grid_h, g.grid_w))
                at += g.n_tokens
            x, y = self.image_origin(i)
            masses = self._masses(mass) if self.image.videos and mass is not None else None
            self.image.paint(frame[y : y + self.image.height, x : x + self.image.width], cells, lut, t, masses)

    def _masses(self, mass: np.ndarray) -> np.ndarray:
        """(G,) each geometry entry's total of ``mass`` (I,): the video pair a tile shows, as the single-run video."""
        starts = np.cumsum([0] + [g.n_tokens for g in self.ref.images[:-1]])
        return np.add.reduceat(np.clip(np.nan_to_num(mass.astype(np.float64)), 0.0, None), starts)

    def _label_value(self, frame: np.ndarray, i: int, text: str) -> None:
        """The per-frame line of band ``i``'s label column (its last line)."""
        lay, lh = self.lay, self.lay.fonts.line_height
        room, y = lay.label_w - 2 * lay.pad, self.band_top(i) + lay.pad + (self.n_label_lines - 1) * lh
        strip = Image.new("RGB", (room, lh), BACKGROUND_RGB)
        lay.fonts.draw(ImageDraw.Draw(strip), (0, 0), cut_to_width(lay.fonts, text, room), HEADER_RGB)
        frame[y : y + lh, lay.pad : lay.pad + room] = np.asarray(strip)

    def _paint_header(self, frame: np.ndarray, t: int) -> None:
        pad, lh = self.lay.pad, self.lay.fonts.line_height
        frame[pad : pad + lh, pad : self.width - pad] = frame_line(
            self.lay.fonts, self.width - 2 * pad, sample_id=self.sample_id, layer=self.models[0].layer, step=t,
            total=self.ref.n_steps, token=self.ref.token_texts[self.ref.prompt_len + t], segment=self.segments[t],
        )


def write_compare_video(models: list[Model], keys: cmp.CompareKeys, images: list[Image.Image], render_cfg: RenderConfig,
                        video_cfg: VideoConfig, out_dir: Path, *, sample_id: str,
                        ground_truth: str | None = None) -> Path:
    """Write ``out_dir/compare_layer{L}.mp4`` (L: the reference's layer), one frame per answer step (atomically:
    :func:`attnviz.video.write_video`)."""
    frames = CompareFrames(models, keys, images, render_cfg, video_cfg, sample_id=sample_id,
                           ground_truth=ground_truth)
    steps = models[0].trace.n_steps
    path = Path(out_dir) / compare_video_name(models[0].layer)
    return write_video((frames.render_into(t) for t in range(steps)), path, video_cfg, total=steps)
