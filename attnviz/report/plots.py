"""The report's plots as PNG bytes: one colour per model (checkpoints in natural order along a colour ramp when
there are many), one line style per correctness group, the 95% bootstrap interval as a band. Matplotlib's Agg
backend without pyplot, imported when a plot is drawn, so reading this module costs nothing.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from attnviz.report.aggregate import CORRECT, INCORRECT, UNKNOWN, Line

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

RC = {"text.parse_math": False, "font.size": 9}  # a model path or label is never mathtext ("$x$" stays as typed)
STYLES = {CORRECT: "-", INCORRECT: "--", UNKNOWN: ":"}
TAB10 = 10  # up to this many models get distinct categorical colours; more get a ramp (checkpoints in order)
DPI = 110
POSITION_TICKS = [f"{10 * b}–{10 * b + 10}%" for b in range(10)]


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


def colours(models: Sequence[str]) -> dict[str, tuple]:
    from matplotlib import colormaps

    if len(models) <= TAB10:
        return {m: colormaps["tab10"](i) for i, m in enumerate(models)}
    ramp = colormaps["viridis"]
    return {m: ramp(i / (len(models) - 1) * 0.9) for i, m in enumerate(models)}


def _draw(ax: Axes, line: Line, colour, label: str, style: str = "-") -> None:
    x, mean = np.asarray(line.x, float), np.asarray(line.mean, float)
    ax.fill_between(x, np.asarray(line.low, float), np.asarray(line.high, float), color=colour, alpha=0.15, lw=0)
    ax.plot(x, mean, style, color=colour, marker="o", markersize=3, lw=1.6, label=label)


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # laid out by hand (legends inside the figure's right margin): one draw, where bbox_inches="tight" needs two
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white", pil_kwargs={"compress_level": 3})
    return buf.getvalue()


def _legend(ax: Axes, n: int) -> None:
    if n:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, ncol=1 + n // 16, frameon=False)


def _layer_axis(ax: Axes, ylabel: str) -> None:
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)


def image_share_png(lines: list[Line], models: Sequence[str]) -> bytes:
    """Image share per layer, a line per model and correctness group."""
    import matplotlib

    with matplotlib.rc_context(RC):
        fig = _figure(8.5, 4.2)
        ax = fig.add_axes((0.08, 0.12, 0.6, 0.78))
        colour, name = colours(models), legend_names(models)
        for line in lines:
            label = f"{name[line.model]}: {line.label} (n={line.samples})" if len(models) > 1 else (
                f"{line.label} (n={line.samples})")
            _draw(ax, line, colour[line.model], label, STYLES.get(line.label, "-"))
        _layer_axis(ax, "share of attention on image tokens")
        ax.set_title("Image share per layer: mean over samples, 95% bootstrap interval", loc="left")
        _legend(ax, len(lines))
        return _png(fig)


def position_png(lines: list[Line], layers: list[int], models: Sequence[str]) -> bytes:
    """Image share over the answer's ten position bins, a panel per chosen layer, a line per model."""
    import matplotlib

    with matplotlib.rc_context(RC):
        cols = max(1, min(len(layers), 4))
        rows = -(-len(layers) // cols)
        fig = _figure(2.6 * cols + 2.4, 2.7 * rows + 0.6)
        axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
        colour, name = colours(models), legend_names(models)
        for ax, layer in zip(axes.flat, layers, strict=False):
            for line in (ln for ln in lines if ln.label == f"layer {layer}"):
                _draw(ax, line, colour[line.model], f"{name[line.model]} (n={line.samples})")
            ax.set_title(f"layer {layer}", loc="left")
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
            ax.set_xticks(range(10), POSITION_TICKS, rotation=60, fontsize=6)
        for ax in axes.flat[len(layers) :]:
            ax.set_visible(False)
        for ax in axes[:, 0]:
            ax.set_ylabel("image share")
        fig.suptitle("Image share along the answer (position bins of the reasoning chain)", x=0.02, ha="left")
        fig.subplots_adjust(left=0.08, right=1 - 2.2 / fig.get_figwidth(), bottom=0.2 / rows + 0.05,
                            top=1 - 0.55 / fig.get_figheight(), hspace=0.7, wspace=0.12)
        axes.flat[min(cols, len(layers)) - 1].legend(loc="upper left", bbox_to_anchor=(1.03, 1.0), fontsize=7,
                                                     frameon=False)
        return _png(fig)


def ground_truth_png(gt: list[Line], hit: list[Line], models: Sequence[str]) -> bytes:
    """Attention share inside the ground-truth region and hit rate per layer, a line per model."""
    import matplotlib

    with matplotlib.rc_context(RC):
        fig = _figure(10.5, 3.8)
        colour, name = colours(models), legend_names(models)
        panels = ((gt, "ground-truth share (gt_share)"), (hit, "hit rate (top image cell inside the region)"))
        for i, (lines, ylabel) in enumerate(panels):
            ax = fig.add_axes((0.06 + 0.36 * i, 0.14, 0.29, 0.74))
            for line in lines:
                _draw(ax, line, colour[line.model], f"{name[line.model]} (n={line.samples})")
            _layer_axis(ax, ylabel)
        title = "Ground truth per layer (coordinate tokens, else the whole answer): mean, 95% bootstrap interval"
        fig.suptitle(title, x=0.02, ha="left")
        _legend(fig.axes[-1], len(models))
        return _png(fig)
