"""Pure rendering: a :class:`~attnviz.trace.Trace` in, video frames out (no model, no I/O).

The colour and weight functions are importable for other front ends: ``colormap_lut``,
``normalise``, ``sink_mask``, ``aggregate_heads``, ``parse_points``, ``segment_labels`` (the last two's trace
calculations live in :mod:`attnviz.analysis` and are re-exported here).
"""

from attnviz.analysis import segment_labels
from attnviz.render.colors import colormap_lut, normalise, scale_of
from attnviz.render.fonts import FontSet, find_font
from attnviz.render.frames import FrameRenderer, frame_count, render_frames
from attnviz.render.overlays import parse_points
from attnviz.render.text_panel import find_text_start
from attnviz.render.weights import aggregate_heads
from attnviz.sinks import SINK_GROUPS, excluded_share, sink_mask

__all__ = [
    "SINK_GROUPS",
    "FontSet",
    "FrameRenderer",
    "aggregate_heads",
    "colormap_lut",
    "excluded_share",
    "find_font",
    "find_text_start",
    "frame_count",
    "normalise",
    "parse_points",
    "render_frames",
    "scale_of",
    "segment_labels",
    "sink_mask",
]
