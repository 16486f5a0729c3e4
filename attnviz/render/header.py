"""The header: a static line (what a frame shows, the colour legend) and a per-frame line (where we are).

Per frame only the first line is redrawn: a one-line strip drawn with PIL and copied into the frame.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from attnviz.analysis import quote
from attnviz.render.colors import BACKGROUND_RGB, CURRENT_TOKEN_RGB, EXCLUDED_RGB, HEADER_RGB, MUTED_RGB
from attnviz.render.fonts import FontSet

ROW_NOTE = "frame shows the attention that produced the blue token"
NORM_NAMES = {"step": "per-step min-max", "global": "one scale for all steps", "log": "log scale"}


def settings_note(heads, norm: str, gamma: float, decades: float, relative: bool = False) -> str:
    """How the weights were made, e.g. ``head mean · per-step min-max γ0.4`` (`` · images ÷ generic prompt`` when
    the image weights are relative to the generic-prompt baseline)."""
    who = {"mean": "head mean", "max": "head max"}.get(heads, f"head {heads}")
    how = NORM_NAMES.get(norm, norm)
    how += f", {decades:g} decades" if norm == "log" else f" γ{gamma:g}"
    return f"{who} · {how}" + (" · images ÷ generic prompt" if relative else "")


def draw_static(canvas: Image.Image, fonts: FontSet, lut: np.ndarray, pad: int, note: str, sinks: bool) -> None:
    """Second header line: the row note (with the settings when they fit) and the legend at the right."""
    draw = ImageDraw.Draw(canvas)
    lh = fonts.line_height
    right = canvas.width - pad
    legend_w = legend(canvas, lut, fonts, left=None, right=right, top=pad + lh, sinks=sinks, measure=True)
    room = right - pad - legend_w - 2 * pad
    options = (f"{ROW_NOTE} · {note}", ROW_NOTE)
    text = next((t for t in options if fonts.text_width(t) <= room), ROW_NOTE)
    fonts.draw(draw, (pad, pad + lh), text, MUTED_RGB)
    left = pad + round(fonts.text_width(text)) + 2 * pad
    legend(canvas, lut, fonts, left=left, right=right, top=pad + lh, sinks=sinks)


def legend(canvas, lut, fonts: FontSet, left, right: int, top: int, sinks: bool, measure: bool = False) -> int:
    """Right-aligned: ``low [gradient] high  ▮ being written  ▮ excluded``; left out if it won't fit.
    Returns its width (``measure``: only that, nothing drawn)."""
    lh, bar_w, gap = fonts.line_height, 120, 10
    bar_h = max(4, lh // 2)
    keys = [("being written", CURRENT_TOKEN_RGB)] + ([("excluded", EXCLUDED_RGB)] if sinks else [])
    widths = [round(fonts.text_width(s)) for s in ("low", "high")]
    key_ws = [round(fonts.text_width(s)) for s, _ in keys]
    total = widths[0] + bar_w + widths[1] + 2 * gap + sum(24 + bar_h + gap + w for w in key_ws)
    x = right - total
    if measure or x < left:
        return total if measure else 0
    draw = ImageDraw.Draw(canvas)
    bar_y = top + (fonts.ascent - bar_h) // 2 + 2
    fonts.draw(draw, (x, top), "low", MUTED_RGB)
    x += widths[0] + gap
    ramp = lut[np.linspace(0, len(lut) - 1, bar_w).astype(np.intp)]  # (bar_w, 3)
    canvas.paste(Image.fromarray(np.repeat(ramp[None], bar_h, axis=0)), (x, bar_y))
    x += bar_w + gap
    fonts.draw(draw, (x, top), "high", MUTED_RGB)
    x += widths[1]
    for (label, rgb), w in zip(keys, key_ws, strict=True):
        x += 24
        draw.rectangle([x, bar_y, x + bar_h, bar_y + bar_h], fill=rgb)
        fonts.draw(draw, (x + bar_h + gap, top), label, MUTED_RGB)
        x += bar_h + gap + w
    return total


def frame_line(
    fonts: FontSet, width: int, *, sample_id: str, layer: int, step: int, total: int, token: str,
    segment: str = "", sinks: float | None = None,
) -> np.ndarray:
    """(line_height, width, 3) uint8: ``sample · layer · step t/T · <think> · writing "tok"`` (+ ``sinks 41%``)."""
    strip = Image.new("RGB", (width, fonts.line_height), BACKGROUND_RGB)
    draw = ImageDraw.Draw(strip)
    token = quote(token)
    where = f"step {step + 1}/{total}"
    seg = f" · <{segment}>" if segment else ""
    right = f"sinks {100 * sinks:.1f}% of the row" if sinks is not None else ""
    right_w = fonts.text_width(right)
    text = f"sample {sample_id} · layer {layer} · {where}{seg} · writing "
    if fonts.text_width(text + token) + right_w + 20 > width:  # small video: the short form
        text = f"{sample_id} · L{layer} · {step + 1}/{total}{seg} · "
        right = f"sinks {100 * sinks:.0f}%" if sinks is not None else ""
        right_w = fonts.text_width(right)
    fonts.draw(draw, (0, 0), text, HEADER_RGB)
    fonts.draw(draw, (fonts.text_width(text), 0), token, CURRENT_TOKEN_RGB)
    if right and fonts.text_width(text + token) + right_w + 20 <= width:
        fonts.draw(draw, (width - right_w, 0), right, MUTED_RGB)
    return np.asarray(strip)
