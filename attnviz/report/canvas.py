"""A small line-chart painter for the report's plots, on Pillow alone: panels with a frame, outward ticks, a light
grid, lines with round markers, interval bands and legends, in matplotlib's default look at 110 dpi.

Why not matplotlib: importing it and laying out a figure cost ~0.7 s of a ~1.4 s report over 200 runs (the
report's target is 10% of the generation it measures); Pillow imports in ~20 ms and draws a figure in ~20 ms.
Shapes are drawn at SS× and scaled down (anti-aliased edges), text at the final size with FreeType (DejaVu Sans,
matplotlib's font), so the labels are as sharp as matplotlib's. Coordinates are pixels of the final image, y down.
"""

from __future__ import annotations

import importlib.util
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

DPI = 110
PT = DPI / 72  # pixels per point
SS = 3  # shapes are drawn this many times larger, then scaled down
BLACK, GRID = (0, 0, 0), (0xB0, 0xB0, 0xB0)
TICK_LENGTH, TICK_PAD = 3.5 * PT, 3.5 * PT  # matplotlib's xtick.major.size and .pad
DASHES = {"-": None, "--": (3.7, 1.6), ":": (1.0, 1.65)}  # on/off lengths in line widths (matplotlib's patterns)
FONT_FILES = ("DejaVuSans.ttf",)
SYSTEM_FONTS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
Colour = tuple[int, int, int]


@cache
def font(size_pt: float) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans at ``size_pt`` (matplotlib's bundled copy, else the system's, else Pillow's own font); the basic
    layout: labels are drawn as given, never shaped (a stray control character cannot fail a plot)."""
    spec = importlib.util.find_spec("matplotlib")  # finds the package without importing it
    folders = [Path(p) / "mpl-data" / "fonts" / "ttf" for p in (spec.submodule_search_locations or [])] if spec else []
    for path in (folder / name for folder in (*folders, *SYSTEM_FONTS) for name in FONT_FILES):
        if path.is_file():
            return ImageFont.truetype(str(path), size_pt * PT, layout_engine=ImageFont.Layout.BASIC)
    return ImageFont.load_default(size_pt * PT)


def text_size(text: str, size_pt: float) -> tuple[float, float]:
    left, top, right, bottom = font(size_pt).getbbox(text, anchor="ls")
    return right - left, bottom - top


def nice_ticks(low: float, high: float, most: int, *, integer: bool = False) -> list[float]:
    """Ticks inside [low, high] at the first step of 1, 2, 2.5, 5 × 10^k that gives at most ``most`` of them."""
    span = max(high - low, 1e-12)
    base = 10 ** math.floor(math.log10(span / max(most, 1)))
    for step in (s * base * m for m in (1, 10, 100) for s in (1, 2, 2.5, 5)):
        if integer and step != int(step):
            continue
        first = math.ceil(low / step - 1e-9)
        ticks = [round((first + i) * step, 12) for i in range(int((high - first * step) / step + 1e-9) + 1)]
        if len(ticks) <= most:
            return ticks
    return [low, high]


def tick_labels(ticks: Sequence[float]) -> list[str]:
    """As matplotlib writes them: the fewest decimals that tell every tick apart, a true minus sign."""
    for decimals in range(0, 7):
        if all(abs(round(t, decimals) - t) < 1e-9 for t in ticks):
            break
    return [f"{t:.{decimals}f}".replace("-", "−") if round(t, decimals) != 0 else f"{0:.{decimals}f}" for t in ticks]


@dataclass
class Panel:
    """One axes: ``box`` (left, top, right, bottom) in pixels, data limits; draw series after creating it (the grid
    is already under them), the frame and ticks are drawn on top when the canvas is written."""

    canvas: Canvas
    box: tuple[float, float, float, float]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    xticks: list[float]
    yticks: list[float]
    xlabels: list[str] = field(default_factory=list)

    def x(self, value: float) -> float:
        left, _, right, _ = self.box
        return left + (value - self.xlim[0]) / (self.xlim[1] - self.xlim[0]) * (right - left)

    def y(self, value: float) -> float:
        _, top, _, bottom = self.box
        return bottom - (value - self.ylim[0]) / (self.ylim[1] - self.ylim[0]) * (bottom - top)

    def points(self, xs: Sequence[float], ys: Sequence[float]) -> list[tuple[float, float]]:
        return [(self.x(a), self.y(b)) for a, b in zip(xs, ys, strict=True)]

    def grid(self) -> None:
        left, top, right, bottom = self.box
        for t in self.xticks:
            self.canvas.segment([(self.x(t), top), (self.x(t), bottom)], GRID, 0.8 * PT, alpha=0.3)
        for t in self.yticks:
            self.canvas.segment([(left, self.y(t)), (right, self.y(t))], GRID, 0.8 * PT, alpha=0.3)

    def band(self, xs: Sequence[float], low: Sequence[float], high: Sequence[float], colour: Colour) -> None:
        """The interval as a filled band (alpha 0.15), split where a point has no value."""
        for run in _runs(xs, low, high):
            outline = self.points([p[0] for p in run], [p[1] for p in run])
            outline += self.points([p[0] for p in run[::-1]], [p[2] for p in run[::-1]])
            if len(run) > 1:
                self.canvas.polygon(outline, colour, alpha=0.15)

    def line(self, xs: Sequence[float], ys: Sequence[float], colour: Colour, style: str = "-") -> None:
        """A line (1.6 pt) with a round marker (3 pt and its 1 pt edge) at every point, broken where a point has no
        value."""
        for run in _runs(xs, ys):
            pts = self.points([p[0] for p in run], [p[1] for p in run])
            self.canvas.segment(pts, colour, 1.6 * PT, dashes=DASHES.get(style))
            for px, py in pts:
                self.canvas.dot(px, py, 4.0 * PT, colour)

    def hline(self, value: float, colour: Colour = BLACK, width_pt: float = 0.8) -> None:
        left, _, right, _ = self.box
        self.canvas.segment([(left, self.y(value)), (right, self.y(value))], colour, width_pt * PT)

    def decorate(self, *, title: str = "", xlabel: str = "", ylabel: str = "", xlabels: Sequence[str] | None = None,
                 ylabels: bool = True, tick_size: float = 9.0, rotation: float = 0.0) -> None:
        """Tick labels (``xlabels``: one per x tick, else the ticks' numbers), axis labels and the title (left)."""
        left, top, _, bottom = self.box
        below = bottom + TICK_LENGTH + TICK_PAD
        texts = list(xlabels) if xlabels is not None else tick_labels(self.xticks)
        anchor = "mt" if rotation else "ma"
        for t, text in zip(self.xticks, texts, strict=True):
            self.canvas.text(self.x(t), below, text, tick_size, anchor, rotation)
        height = max((_rotated_height(text, tick_size, rotation) for text in texts), default=0.0)
        widest = 0.0
        if ylabels:
            for t, text in zip(self.yticks, tick_labels(self.yticks), strict=True):
                self.canvas.text(left - TICK_LENGTH - TICK_PAD, self.y(t), text, 9.0, "rm")
                widest = max(widest, text_size(text, 9.0)[0])
        if xlabel:
            self.canvas.text((left + self.box[2]) / 2, below + height + 4 * PT, xlabel, 9.0, "ma")
        if ylabel:
            self.canvas.text(left - TICK_LENGTH - TICK_PAD - widest - 4 * PT, (top + bottom) / 2, ylabel, 9.0, "rm",
                             90.0)
        if title:
            self.canvas.text(left, top - 6 * PT, title, 10.8, "ld")

    def frame(self) -> None:
        """The four spines and the outward ticks (on the shapes layer)."""
        left, top, right, bottom = self.box
        self.canvas.segment([(left, top), (right, top), (right, bottom), (left, bottom), (left, top)], BLACK,
                            0.8 * PT)
        for t in self.xticks:
            self.canvas.segment([(self.x(t), bottom), (self.x(t), bottom + TICK_LENGTH)], BLACK, 0.8 * PT)
        for t in self.yticks:
            self.canvas.segment([(left, self.y(t)), (left - TICK_LENGTH, self.y(t))], BLACK, 0.8 * PT)


def _rotated_height(text: str, size: float, rotation: float) -> float:
    width, height = text_size(text, size)
    angle = math.radians(rotation)
    return abs(width * math.sin(angle)) + abs(height * math.cos(angle)) if rotation else font(size).size * 1.1


def _runs(xs: Sequence[float], *columns: Sequence[float]) -> list[list[tuple[float, ...]]]:
    """Consecutive points where every column has a value (NaN or None: a gap)."""
    runs: list[list[tuple[float, ...]]] = [[]]
    for point in zip(xs, *columns, strict=True):
        if any(v is None or v != v for v in point):
            runs.append([])
        else:
            runs[-1].append(point)
    return [r for r in runs if r]


@dataclass
class Label:
    x: float
    y: float
    text: str
    size: float  # points
    anchor: str = "ls"  # Pillow's text anchors; for rotated text: "mt" (centre, top) or "rm" (right, middle)
    rotation: float = 0.0


class Canvas:
    """A figure ``width_in`` × ``height_in`` inches at DPI; ``png()`` writes it."""

    def __init__(self, width_in: float, height_in: float) -> None:
        self.width, self.height = round(width_in * DPI), round(height_in * DPI)
        self.shapes = Image.new("RGB", (self.width * SS, self.height * SS), "white")
        self._draw = ImageDraw.Draw(self.shapes, "RGBA")  # RGBA: fills blend with what lies under them
        self.labels: list[Label] = []
        self.panels: list[Panel] = []

    def panel(self, box: tuple[float, float, float, float], xlim: tuple[float, float], ylim: tuple[float, float],
              xticks: list[float], yticks: list[float]) -> Panel:
        panel = Panel(self, box, xlim, ylim, xticks, yticks)
        panel.grid()
        self.panels.append(panel)
        return panel

    def text(self, x: float, y: float, text: str, size: float, anchor: str = "ls", rotation: float = 0.0) -> None:
        self.labels.append(Label(x, y, text, size, anchor, rotation))

    def segment(self, points: list[tuple[float, float]], colour: Colour, width: float, *, alpha: float = 1.0,
                dashes: tuple[float, float] | None = None) -> None:
        """A polyline ``width`` pixels wide (round joints); ``dashes``: on/off lengths in line widths."""
        fill = (*colour, round(255 * alpha))
        for part in _dashed(points, dashes, width) if dashes else [points]:
            scaled = [(x * SS, y * SS) for x, y in part]
            self._draw.line(scaled, fill=fill, width=max(1, round(width * SS)), joint="curve")

    def polygon(self, points: list[tuple[float, float]], colour: Colour, *, alpha: float) -> None:
        self._draw.polygon([(x * SS, y * SS) for x, y in points], fill=(*colour, round(255 * alpha)))

    def dot(self, x: float, y: float, diameter: float, colour: Colour) -> None:
        r = diameter * SS / 2
        self._draw.ellipse((x * SS - r, y * SS - r, x * SS + r, y * SS + r), fill=colour)

    def legend(self, x: float, y: float, entries: Sequence[tuple[str, Colour, str]], size: float = 7.0) -> None:
        """Entries (label, colour, line style) from (x, y) down, as matplotlib's frameless legend: a line sample with
        its marker, the label beside it; more than 16 entries spread over columns."""
        em = size * PT
        columns = 1 + len(entries) // 16
        per = -(-len(entries) // columns) if entries else 0
        row = 1.67 * em  # the text's height and matplotlib's labelspacing (0.5 em)
        x += 0.4 * em
        for c in range(columns):
            chunk = entries[c * per : (c + 1) * per]
            for i, (label, colour, style) in enumerate(chunk):
                middle = y + 0.4 * em + (i + 0.5) * row
                self.segment([(x, middle), (x + 2 * em, middle)], colour, 1.6 * PT, dashes=DASHES.get(style))
                self.dot(x + em, middle, 4.0 * PT, colour)
                self.text(x + 2.8 * em, middle, label, size, "lm")
            x += 2.8 * em + max((text_size(label, size)[0] for label, _, _ in chunk), default=0) + 2 * em

    def png(self) -> bytes:
        """The figure as PNG bytes; the canvas is spent (its large drawing layer freed at once)."""
        for panel in self.panels:
            panel.frame()
        self.panels.clear()  # the panels point back here: no cycle left to wait for the garbage collector
        image = self.shapes.reduce(SS)  # the mean of each SS × SS block: anti-aliased edges
        del self._draw, self.shapes
        draw = ImageDraw.Draw(image)
        for label in self.labels:
            _draw_label(image, draw, label)
        buf = io.BytesIO()
        image.save(buf, format="png", dpi=(DPI, DPI), compress_level=3)
        return buf.getvalue()


def _draw_label(image: Image.Image, draw: ImageDraw.ImageDraw, label: Label) -> None:
    face = font(label.size)
    if not label.rotation:
        draw.text((label.x, label.y), label.text, fill=BLACK, font=face, anchor=label.anchor)
        return
    left, top, right, bottom = face.getbbox(label.text, anchor="lt")
    mask = Image.new("L", (math.ceil(right - left) + 2, math.ceil(bottom - top) + 2), 0)
    ImageDraw.Draw(mask).text((1 - left, 1 - top), label.text, fill=255, font=face, anchor="lt")
    mask = mask.rotate(label.rotation, resample=Image.Resampling.BICUBIC, expand=True)
    w, h = mask.size
    x = label.x - (w / 2 if label.anchor[0] == "m" else w if label.anchor[0] == "r" else 0)
    y = label.y - (h / 2 if label.anchor[1] == "m" else h if label.anchor[1] in "bs" else 0)
    image.paste(BLACK, (round(x), round(y)), mask)


def _dashed(points: list[tuple[float, float]], dashes: tuple[float, float], width: float
            ) -> list[list[tuple[float, float]]]:
    """The polyline cut into dashes: ``dashes`` (on, off) in line widths, the pattern running on across corners."""
    on, off = dashes[0] * width, dashes[1] * width
    parts: list[list[tuple[float, float]]] = []
    drawing, left = True, on  # in a dash or a gap, and how much of it is left
    current: list[tuple[float, float]] = [points[0]]
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        length, done = math.hypot(x1 - x0, y1 - y0), 0.0
        while length - done > left:
            done += left
            point = (x0 + (x1 - x0) * done / length, y0 + (y1 - y0) * done / length)
            if drawing:
                parts.append([*current, point])
            current, drawing = [point], not drawing
            left = off if not drawing else on
        left -= length - done
        current.append((x1, y1))
    if drawing and len(current) > 1:
        parts.append(current)
    return parts
