"""``poster.png``: the video's key frames (the first answer token, the strongest image attention, the last token:
:func:`attnviz.analysis.key_frames`), one above the other at half size, each under a caption, for papers
and READMEs.

The frames are the video's own, kept while the video streams (:class:`KeyFrameTap`): the poster never disagrees
with the video and costs no extra drawing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from attnviz.analysis import key_frames
from attnviz.files import POSTER_NAME
from attnviz.render.colors import BACKGROUND_RGB, HEADER_RGB
from attnviz.render.fonts import FontSet, find_font
from attnviz.trace import Trace, atomic_write

__all__ = ["POSTER_NAME", "KeyFrameTap", "compose_poster", "poster_steps", "write_poster"]
SCALE = 2  # frames are shown at 1/SCALE of the video's size
CAPTION_PT = 18  # caption font size, in poster pixels
GAP = 6  # poster pixels between key frames


class KeyFrameTap:
    """Passes a frame stream through unchanged and keeps a copy of the frames of ``steps`` (frame t = step t)."""

    def __init__(self, steps: Iterable[int]):
        self.steps = set(steps)
        self.kept: dict[int, np.ndarray] = {}  # step -> (H, W, 3) uint8 copy

    def __call__(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for step, frame in enumerate(frames):
            if step in self.steps:
                self.kept[step] = np.array(frame, copy=True)  # the writer may reuse its buffer
            yield frame


def poster_steps(trace: Trace, layer: int) -> list[tuple[int, str]]:
    """[(step, caption)]: the key frames (:func:`attnviz.analysis.key_frames`) with their step numbers."""
    return [(step, f"{label} · step {step + 1} of {trace.n_steps}") for step, label in key_frames(trace, layer)]


def compose_poster(frames: list[tuple[str, np.ndarray]], fonts: FontSet) -> Image.Image:
    """The frames ((caption, (H, W, 3) uint8)), each reduced by SCALE under its caption, stacked top to bottom."""
    if not frames:
        raise ValueError("a poster needs at least one key frame")
    shown = [(caption, Image.fromarray(frame).reduce(SCALE)) for caption, frame in frames]
    width = max(image.width for _, image in shown)
    strip = fonts.line_height + 2 * GAP
    height = sum(strip + image.height for _, image in shown) + GAP
    poster = Image.new("RGB", (width, height), BACKGROUND_RGB)
    draw, top = ImageDraw.Draw(poster), 0
    for caption, image in shown:
        fonts.draw(draw, (GAP, top + GAP), caption, HEADER_RGB)
        poster.paste(image, (0, top + strip))
        top += strip + image.height
    return poster


def write_poster(frames: list[tuple[str, np.ndarray]], path: Path, *, font_path: str | None = None) -> Path:
    """Write :func:`compose_poster` of ``frames`` to ``path`` (temp name, then rename)."""
    poster = compose_poster(frames, find_font(font_path, CAPTION_PT))
    atomic_write(path, lambda f: poster.save(f, format="PNG", compress_level=4))
    return path
