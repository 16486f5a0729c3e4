"""The report's plots as PNG bytes: one colour per model (checkpoints in natural order along a colour ramp when
there are many), one line style per correctness group, the 95% bootstrap interval as a band. Drawn with
:mod:`attnviz.report.canvas` (Pillow), in matplotlib's default look; no plotting library is imported.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from attnviz.report.aggregate import CORRECT, INCORRECT, UNKNOWN, Line
from attnviz.report.canvas import DPI, Canvas, Colour, Panel, nice_ticks

STYLES = {CORRECT: "-", INCORRECT: "--", UNKNOWN: ":"}
TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
         "#17becf")  # up to this many models get distinct categorical colours; more get a ramp (checkpoints in order)
VIRIDIS = ("#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725")
POSITION_TICKS = [f"{10 * b}–{10 * b + 10}%" for b in range(10)]
COMPARE_PANELS = {"image_share": "image share", "gt_share": "ground-truth share", "hit": "hit rate",
                  "image_entropy": "image entropy"}
Box = tuple[float, float, float, float]


def short(model: str, width: int = 36) -> str:
    """A model's legend label: the end of its path, where checkpoints differ; a lone surrogate (no text at all to
    a font) as its escape."""
    label = model.encode("utf-8", "backslashreplace").decode("utf-8")
    return label if len(label) <= width else "…" + label[-(width - 1) :]


def legend_names(models: Sequence[str]) -> dict[str, str]:
    """Legend labels: the models' paths without the folders they all share (checkpoints of one run differ only in
    the last part; the page lists the full paths)."""
    if len(models) < 2:
        return {m: short(m) for m in models}
    common = os.path.commonprefix(list(models))
    cut = common.rfind("/") + 1  # whole folders only: "step_200" and "step_250" keep their "step_2"
    return {m: short(m[cut:] or m) for m in models}


def _rgb(hex_colour: str) -> Colour:
    return int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16)


def ramp(fraction: float) -> Colour:
    """viridis at ``fraction`` (0–1), interpolated between nine of its colours."""
    at = min(max(fraction, 0.0), 1.0) * (len(VIRIDIS) - 1)
    i = min(int(at), len(VIRIDIS) - 2)
    a, b = _rgb(VIRIDIS[i]), _rgb(VIRIDIS[i + 1])
    return tuple(round(x + (y - x) * (at - i)) for x, y in zip(a, b, strict=True))


def colours(models: Sequence[str]) -> dict[str, Colour]:
    if len(models) <= len(TAB10):
        return {m: _rgb(TAB10[i]) for i, m in enumerate(models)}
    return {m: ramp(i / (len(models) - 1) * 0.9) for i, m in enumerate(models)}


def _limits(values: Sequence[float]) -> tuple[float, float]:
    """matplotlib's automatic limits: the data's range and 5% on each side (±0.5 around a single value)."""
    low, high = min(values), max(values)
    margin = (high - low) * 0.05 if high > low else 0.5
    return low - margin, high + margin


def _finite(lines: Sequence[Line], *fields: str) -> list[float]:
    return [v for ln in lines for name in fields for v in getattr(ln, name) if v is not None and v == v]


def _panel(canvas: Canvas, box: Box, xs: Sequence[float], ylim: tuple[float, float], *,
           xticks: list[float] | None = None) -> Panel:
    """An axes over ``xs`` (layers: integer ticks) from ``ylim[0]`` to ``ylim[1]``; as many ticks as matplotlib's
    automatic locator fits (three label heights per x tick, two per y tick, at most ten)."""
    left, top, right, bottom = box
    xlim = _limits(xs or [0.0]) if xticks is None else (min(xticks) - 0.45, max(xticks) + 0.45)
    if xticks is None:
        xticks = nice_ticks(*xlim, min(9, int((right - left) / DPI * 72 / 27)) + 1, integer=True)
    yticks = nice_ticks(*ylim, min(9, int((bottom - top) / DPI * 72 / 18)) + 1)
    return canvas.panel(box, xlim, ylim, xticks, yticks)


def _draw(panel: Panel, line: Line, colour: Colour, style: str = "-") -> None:
    panel.band(line.x, line.low, line.high, colour)
    panel.line(line.x, line.mean, colour, style)


def _grid_boxes(canvas: Canvas, n: int, cols: int, *, left: float, right: float, bottom: float, top: float,
                hspace: float, wspace: float) -> list[Box]:
    """Boxes of ``n`` panels in rows of ``cols``, laid out as matplotlib's subplots_adjust (figure fractions)."""
    rows = -(-n // cols)
    width = (right - left) * canvas.width / (cols + wspace * (cols - 1))
    height = (top - bottom) * canvas.height / (rows + hspace * (rows - 1))
    boxes = []
    for i in range(n):
        r, c = divmod(i, cols)
        x0 = left * canvas.width + c * width * (1 + wspace)
        y0 = (1 - top) * canvas.height + r * height * (1 + hspace)
        boxes.append((x0, y0, x0 + width, y0 + height))
    return boxes


def _fraction_box(canvas: Canvas, left: float, bottom: float, width: float, height: float) -> Box:
    """A box given as matplotlib's add_axes rectangle (figure fractions from the bottom left)."""
    return (left * canvas.width, (1 - bottom - height) * canvas.height, (left + width) * canvas.width,
            (1 - bottom) * canvas.height)


def _legend(canvas: Canvas, box: Box, entries: list[tuple[str, Colour, str]], beside: float = 0.01) -> None:
    left, top, right, _ = box
    canvas.legend(right + beside * (right - left), top, entries)


def image_share_png(lines: list[Line], models: Sequence[str]) -> bytes:
    """Image share per layer, a line per model and correctness group."""
    canvas = Canvas(8.5, 4.2)
    box = _fraction_box(canvas, 0.08, 0.12, 0.6, 0.78)
    panel = _panel(canvas, box, [x for ln in lines for x in ln.x], (0.0, 1.0))
    colour, name = colours(models), legend_names(models)
    entries = []
    for line in lines:
        style = STYLES.get(line.label, "-")
        _draw(panel, line, colour[line.model], style)
        label = f"{line.label} (n={line.samples})"
        entries.append((f"{name[line.model]}: {label}" if len(models) > 1 else label, colour[line.model], style))
    panel.decorate(title="Image share per layer: mean over samples, 95% bootstrap interval", xlabel="layer",
                   ylabel="share of attention on image tokens")
    _legend(canvas, box, entries)
    return canvas.png()


def position_png(lines: list[Line], layers: list[int], models: Sequence[str]) -> bytes:
    """Image share over the answer's ten position bins, a panel per chosen layer, a line per model."""
    cols = max(1, min(len(layers), 4))
    rows = -(-len(layers) // cols)
    canvas = Canvas(2.6 * cols + 2.4, 2.7 * rows + 0.6)
    width_in, height_in = canvas.width / DPI, canvas.height / DPI
    boxes = _grid_boxes(canvas, len(layers), cols, left=0.08, right=1 - 2.2 / width_in, bottom=0.2 / rows + 0.05,
                        top=1 - 0.55 / height_in, hspace=0.7, wspace=0.12)
    colour, name = colours(models), legend_names(models)
    entries: dict[str, tuple[str, Colour, str]] = {}
    for i, (box, layer) in enumerate(zip(boxes, layers, strict=False)):
        panel = _panel(canvas, box, [], (0.0, 1.0), xticks=list(range(10)))
        for line in (ln for ln in lines if ln.label == f"layer {layer}"):
            _draw(panel, line, colour[line.model])
            if i == min(cols, len(layers)) - 1:
                entries[line.model] = (f"{name[line.model]} (n={line.samples})", colour[line.model], "-")
        panel.decorate(title=f"layer {layer}", xlabels=POSITION_TICKS, tick_size=6.0, rotation=60.0,
                       ylabels=i % cols == 0, ylabel="image share" if i % cols == 0 else "")
    canvas.text(0.02 * canvas.width, 0.02 * canvas.height, "Image share along the answer (position bins of the "
                "reasoning chain)", 10.8, "la")
    _legend(canvas, boxes[min(cols, len(layers)) - 1], list(entries.values()), beside=0.03)
    return canvas.png()


def ground_truth_png(gt: list[Line], hit: list[Line], models: Sequence[str]) -> bytes:
    """Attention share inside the ground-truth region and hit rate per layer, a line per model."""
    canvas = Canvas(10.5, 3.8)
    colour, name = colours(models), legend_names(models)
    panels = ((gt, "ground-truth share (gt_share)"), (hit, "hit rate (top image cell inside the region)"))
    box = None
    for i, (lines, ylabel) in enumerate(panels):
        box = _fraction_box(canvas, 0.06 + 0.36 * i, 0.14, 0.29, 0.74)
        panel = _panel(canvas, box, [x for ln in lines for x in ln.x], (0.0, 1.0))
        for line in lines:
            _draw(panel, line, colour[line.model])
        panel.decorate(xlabel="layer", ylabel=ylabel)
    canvas.text(0.02 * canvas.width, 0.02 * canvas.height, "Ground truth per layer (coordinate tokens, else the "
                "whole answer): mean, 95% bootstrap interval", 10.8, "la")
    _legend(canvas, box, [(f"{name[ln.model]} (n={ln.samples})", colour[ln.model], "-") for ln in hit or gt])
    return canvas.png()


def _compare_png(lines: dict[str, list[Line]], models: Sequence[str], title: str, *, zero: bool) -> bytes:
    """A panel per metric over the reference's layers, a line (and band) per model; ``zero``: differences (a zero
    line, the y range the data's), else levels (0 to 1)."""
    names = [name for name in COMPARE_PANELS if lines.get(name)]
    cols = max(1, min(len(names), 2))
    rows = max(1, -(-len(names) // cols))
    canvas = Canvas(4.1 * cols + 2.3, 2.9 * rows + 0.6)
    width_in, height_in = canvas.width / DPI, canvas.height / DPI
    boxes = _grid_boxes(canvas, len(names), cols, left=0.08, right=1 - 2.2 / width_in, bottom=0.5 / height_in,
                        top=1 - 0.55 / height_in, hspace=0.45, wspace=0.28)
    colour, label = colours(models), legend_names(models)
    entries: dict[str, tuple[str, Colour, str]] = {}
    for box, name in zip(boxes, names, strict=True):
        ylim = _limits([0.0, *_finite(lines[name], "low", "high", "mean")]) if zero else (0.0, 1.0)
        panel = _panel(canvas, box, [x for ln in lines[name] for x in ln.x], ylim)
        if zero:
            panel.hline(0.0)
        for ln in lines[name]:
            _draw(panel, ln, colour[ln.model])
            entries.setdefault(ln.model, (f"{label[ln.model]} (n={ln.samples})", colour[ln.model], "-"))
        panel.decorate(xlabel="reference layer", ylabel=COMPARE_PANELS[name] + (" difference" if zero else ""))
    canvas.text(0.02 * canvas.width, 0.02 * canvas.height, title, 10.8, "la")
    if boxes:
        _legend(canvas, boxes[cols - 1] if len(boxes) >= cols else boxes[-1],
                [entries[m] for m in models if m in entries])
    return canvas.png()


def compare_levels_png(lines: dict[str, list[Line]], models: Sequence[str]) -> bytes:
    """Each model's mean of the main metrics per reference layer (its own layer matched), side by side."""
    return _compare_png(lines, models, "Models side by side: mean over the compared samples, 95% bootstrap interval",
                        zero=False)


def compare_diff_png(lines: dict[str, list[Line]], models: Sequence[str]) -> bytes:
    """The paired difference (model − reference) of the main metrics per reference layer."""
    return _compare_png(lines, models, "Paired difference, model − reference: mean over samples, 95% bootstrap "
                        "interval", zero=True)

