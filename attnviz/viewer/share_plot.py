"""``attention_share.png``: over the steps, where each step's attention went (image / text / special tokens), and
the image share of every captured layer. Drawn with matplotlib's Agg backend, no pyplot state; matplotlib is
imported when a plot is drawn, so reading this module costs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from attnviz.analysis import SHARE_KINDS, answer_segments, kind_shares, quote
from attnviz.files import SHARE_NAME
from attnviz.trace import Trace, atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["SHARE_NAME", "fixed_grid", "write_share_plot"]
SHARE_COLORS = ("#4c9be8", "#8fd18b", "#b0b3ba")  # image, text, special
SEGMENT_COLORS = {"think": "#b48cff", "answer": "#ffc857"}
MAX_TICK_LABELS = 48  # up to this many steps, the share plot labels each step with its token
RC = {"text.parse_math": False, "font.size": 9}  # token text is never mathtext ("$x$" stays as typed)


def fixed_grid(fig: Figure, rows: int, widths: list[float], height: float, margins: tuple[float, float, float, float],
               gaps: tuple[float, float]):
    """A gridspec laid out in inches: axes ``widths`` wide and ``height`` high, ``margins`` (left, right, top,
    bottom) and ``gaps`` (between columns, between rows) around them. Sized once, by hand: matplotlib's
    constrained layout would draw the whole figure an extra time (a third of the plot's cost)."""
    left, right, top, bottom = margins
    fig_w, fig_h = fig.get_size_inches()
    return fig.add_gridspec(
        rows, len(widths), width_ratios=widths, left=left / fig_w, right=1 - right / fig_w,
        top=1 - top / fig_h, bottom=bottom / fig_h, wspace=gaps[0] / float(np.mean(widths)), hspace=gaps[1] / height,
    )


def _save(fig: Figure, path: Path, dpi: int) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi, facecolor="white"))
    return path


def write_share_plot(trace: Trace, layer: int, path: Path, *, max_layers: int = 12) -> Path:
    """Share of each step's row on image / text / special tokens (stacked), and the image share per layer."""
    import matplotlib
    from matplotlib.figure import Figure

    shares = kind_shares(trace, layer)  # (T, 3)
    steps = np.arange(1, trace.n_steps + 1)
    others = trace.layers if len(trace.layers) <= max_layers else _spread(trace.layers, max_layers)
    labelled = trace.n_steps <= MAX_TICK_LABELS  # tokens under the steps, written upwards
    with matplotlib.rc_context(RC):
        n_axes = 2 if len(trace.layers) > 1 else 1
        width = max(6.0, min(14.0, 0.22 * trace.n_steps + 3))
        bottom = 1.35 if labelled else 0.5
        fig = Figure(figsize=(width, 2.3 * n_axes + 0.6 * (n_axes - 1) + 0.4 + bottom))
        grid = fixed_grid(fig, n_axes, [width - 1.95], 2.3, margins=(0.7, 1.25, 0.4, bottom), gaps=(0.0, 0.6))
        axes = [fig.add_subplot(grid[i, 0]) for i in range(n_axes)]
        if n_axes == 2:
            axes[0].sharex(axes[1])
            axes[0].tick_params(labelbottom=False)
        axes[0].stackplot(steps, shares.T, labels=SHARE_KINDS, colors=SHARE_COLORS, step="mid")
        axes[0].set_ylim(0, 1)
        axes[0].set_ylabel("share of the row")
        axes[0].set_title(f"layer {layer}: where the attention that produced each token went", loc="left")
        axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
        if n_axes == 2:
            for other in others:
                axes[1].plot(steps, kind_shares(trace, other)[:, 0], lw=2.2 if other == layer else 1.0,
                             label=f"layer {other}")
            axes[1].set_ylim(0, 1)
            axes[1].set_ylabel("image share")
            axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, ncol=1 + len(others) // 13)
        for ax in axes:
            _shade_segments(ax, trace)
        _step_ticks(axes[-1], trace, steps)
        return _save(fig, path, dpi=110)


def _spread(layers: list[int], count: int) -> list[int]:
    return [layers[i] for i in np.unique(np.linspace(0, len(layers) - 1, count).round().astype(int))]


def _shade_segments(ax, trace: Trace) -> None:
    for seg in answer_segments(trace):
        ax.axvspan(seg.first + 0.5, seg.last + 1.5, color=SEGMENT_COLORS[seg.name], alpha=0.18, lw=0, zorder=0)
        ax.text(seg.first + 0.6, 0.98, f"<{seg.name}>", va="top", fontsize=8, color="#333")


def _step_ticks(ax, trace: Trace, steps: np.ndarray) -> None:
    ax.set_xlim(0.5, trace.n_steps + 0.5)
    ax.set_xlabel("step (generated token)")
    if trace.n_steps <= MAX_TICK_LABELS:
        labels = [quote(t, 12) for t in trace.token_texts[trace.prompt_len :]]
        ax.set_xticks(steps, labels, rotation=90, fontfamily="monospace", fontsize=7)
