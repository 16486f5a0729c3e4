"""Pure rendering: a :class:`~attnviz.trace.Trace` in, video frames out (no model, no I/O)."""

from attnviz.render.colors import colormap_lut, normalize_weights
from attnviz.render.fonts import FontSet, find_font
from attnviz.render.frames import FrameRenderer, frame_count, render_frames
from attnviz.render.text_panel import find_text_start

__all__ = [
    "FontSet",
    "FrameRenderer",
    "colormap_lut",
    "find_font",
    "find_text_start",
    "frame_count",
    "normalize_weights",
    "render_frames",
]
