"""The comparison video's geometry: a header, then one band per model and per difference, each a label column,
the text panel and the image panel(s); the largest font whose bands still fit."""

from __future__ import annotations

import math
from dataclasses import dataclass

from attnviz.errors import SettingError
from attnviz.render.fonts import FontSet, find_font
from attnviz.render.frames import MIN_FONT_SIZE, panel_pad
from attnviz.render.image_panel import GAP
from attnviz.schema import RenderConfig

MIN_BAND_LINES = 4  # a band's text panel shows at least this many lines
LABEL_CHARS = 16  # width of the label column, in characters
CAPTION_SCALE = 0.6  # image captions are drawn this much smaller than the text: the bands are short
MIN_TEXT_CHARS = 24  # the text panel is at least this many characters wide


@dataclass(frozen=True)
class Layout:
    fonts: FontSet
    captions: FontSet  # the image captions' (smaller: the bands are short)
    pad: int
    header_h: int
    band_h: int
    label_w: int
    text_w: int
    image_w: int
    body_h: int  # height of a band's panels


def _layout(fonts: FontSet, captions: FontSet, width: int, height: int, n_bands: int, aspect: float) -> Layout | None:
    """Band geometry for ``fonts``; None when a band cannot hold MIN_BAND_LINES lines or the text is too narrow.
    ``aspect``: the images' summed width / height (their panel is made about that wide)."""
    pad, lh, char_w = panel_pad(width, height), fonts.line_height, fonts.text_width("x")
    header_h = 2 * lh + 2 * pad
    band_h = (height - header_h) // n_bands
    body_h = band_h - 2 * pad
    label_w = math.ceil(LABEL_CHARS * char_w) + 2 * pad
    room = width - label_w - 2 * pad  # text + gap + images
    image_w = 0 if aspect <= 0 else int(min(room // 2, (body_h - captions.line_height) * aspect + 2 * GAP))
    text_w = room - image_w - (pad if image_w else 0)
    if body_h < MIN_BAND_LINES * lh or text_w < MIN_TEXT_CHARS * char_w:
        return None
    return Layout(fonts, captions, pad, header_h, band_h, label_w, text_w, image_w, body_h)


def fit_layout(cfg: RenderConfig, width: int, height: int, n_bands: int, aspect: float) -> Layout:
    """The largest font (render.font_size down to MIN_FONT_SIZE) whose bands fit; a clear error otherwise."""
    for size in range(cfg.font_size, min(cfg.font_size, MIN_FONT_SIZE) - 1, -1):
        fonts = find_font(cfg.font_path, size, cfg.cjk_font_path)
        captions = find_font(cfg.font_path, max(MIN_FONT_SIZE, round(CAPTION_SCALE * size)), cfg.cjk_font_path)
        layout = _layout(fonts, captions, width, height, n_bands, aspect)
        if layout is not None:
            return layout
    raise SettingError(f"video size {width}x{height} is too small for {n_bands} comparison bands: raise "
                       "video.width/height or compare fewer models")


def cut_to_width(fonts: FontSet, text: str, width: float) -> str:  # cut (with …) to fit ``width`` pixels
    while text and fonts.text_width(text) > width:
        text = text[:-2] + "…" if len(text) > 1 else ""
    return text
