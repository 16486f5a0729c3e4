"""``poster.png`` (key frames side by side, for papers and READMEs) and ``attention_share.png`` (where each step's
attention went: image / text / special tokens). Drawn with matplotlib's Agg backend, no pyplot state.

Colours and weights are the video's: the row that produced the step's token, restricted to the text panel's
tokens (resp. all image tokens), normalised with ``render.gamma`` and coloured with ``render.colormap``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from attnviz.render.colors import CURRENT_TOKEN_RGB, colormap_lut, normalize_weights, weights_to_rgb
from attnviz.trace import Trace, atomic_write
from attnviz.viewer.analysis import SHARE_KINDS, answer_segments, attention_shares, key_frames

POSTER_NAME = "poster.png"
SHARE_NAME = "attention_share.png"
TOP_TOKENS = 8  # text tokens listed per key frame
SHARE_COLORS = ("#4c9be8", "#8fd18b", "#b0b3ba")  # image, text, special
SEGMENT_COLORS = {"think": "#b48cff", "answer": "#ffc857"}
MAX_TICK_LABELS = 48  # up to this many steps, the share plot labels each step with its token
RC = {"text.parse_math": False, "font.size": 9}  # token text is never mathtext ("$x$" stays as typed)


def _save(fig: Figure, path: Path, dpi: int) -> Path:
    FigureCanvasAgg(fig)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi, facecolor="white"))
    return path


def _short(text: str, limit: int = 24) -> str:
    shown = text.replace("\n", "\\n").replace("\t", "\\t")
    return '"' + (shown[: limit - 1] + "…" if len(shown) > limit else shown) + '"'


def _panel_positions(trace: Trace, text_start: int, step: int) -> np.ndarray:
    """(N,) the text panel's tokens written before ``step``'s token (the video's text panel)."""
    end = trace.prompt_len + step
    return np.array([p for p in range(max(0, text_start), end) if trace.token_kinds[p] != "image"], dtype=np.int64)


def _draw_image(ax, image: Image.Image, geo, cells_rgb: np.ndarray, render_cfg: Any, best: tuple[int, int] | None):
    """The image as the model saw it, its cells tinted (``cells_rgb`` (grid_h, grid_w, 3) uint8), a grid."""
    w, h = geo.pixel_w, geo.pixel_h
    ax.imshow(np.asarray(image.convert("RGB").resize((w, h))), extent=(0, w, h, 0))
    alpha = float(getattr(render_cfg, "tint_alpha", 0.45))
    tint = np.concatenate([cells_rgb / 255.0, np.full((*cells_rgb.shape[:2], 1), alpha)], axis=2)
    ax.imshow(tint, extent=(0, w, h, 0), interpolation="nearest")
    if getattr(render_cfg, "grid_lines", True):
        ax.vlines(np.arange(1, geo.grid_w) * w / geo.grid_w, 0, h, colors="white", linewidths=0.5, alpha=0.35)
        ax.hlines(np.arange(1, geo.grid_h) * h / geo.grid_h, 0, w, colors="white", linewidths=0.5, alpha=0.35)
    if best is not None:  # the step's strongest cell over all images
        r, c = best
        cw, ch = w / geo.grid_w, h / geo.grid_h
        ax.add_patch(Rectangle((c * cw, r * ch), cw, ch, fill=False, lw=1.6, ec=np.array(CURRENT_TOKEN_RGB) / 255))
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_top_tokens(ax, trace: Trace, row: np.ndarray, positions: np.ndarray, lut: np.ndarray, gamma: float):
    """Horizontal bars: the text panel's most attended tokens, in % of the whole row, coloured as in the video."""
    if len(positions) == 0:
        ax.text(0.5, 0.5, "no text tokens before this step", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    colors = weights_to_rgb(normalize_weights(row[positions], gamma), lut) / 255.0  # (N, 3)
    share = 100 * row[positions] / max(float(row.sum()), 1e-12)
    top = np.argsort(-share, kind="stable")[:TOP_TOKENS][::-1]
    labels = [f"{_short(trace.token_texts[positions[i]])} @{positions[i]}" for i in top]
    ax.barh(range(len(top)), share[top], color=colors[top], edgecolor="#444", linewidth=0.4)
    ax.set_yticks(range(len(top)), labels, fontfamily="monospace", fontsize=8)
    ax.set_xlabel("% of the row")
    ax.spines[["top", "right"]].set_visible(False)


def write_poster(
    trace: Trace, layer: int, images: list[Image.Image], render_cfg: Any, path: Path,
    *, sample_id: str, text_start: int,
) -> Path:
    """Key frames as rows: the most attended text tokens, then every image with its heatmap."""
    frames = key_frames(trace, layer)
    lut = colormap_lut(str(getattr(render_cfg, "colormap", "red_green")))
    gamma = float(getattr(render_cfg, "gamma", 0.4))
    shown = [g for g in trace.images if g.index < len(images)]
    n_cols = 1 + len(shown)
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(4.4 + 3.0 * len(shown), 0.4 + 2.9 * len(frames)), layout="constrained")
        grid = fig.add_gridspec(len(frames), n_cols, width_ratios=[1.45] + [1.0] * len(shown))
        fig.suptitle(f"sample {sample_id} · layer {layer} · what the model looked at when it wrote each token",
                     fontsize=10)
        for r, (step, label) in enumerate(frames):
            row = trace.row(layer, step).astype(np.float64)  # (prompt_len + step,)
            text_ax = fig.add_subplot(grid[r, 0])
            _draw_top_tokens(text_ax, trace, row, _panel_positions(trace, text_start, step), lut, gamma)
            token = _short(trace.token_texts[trace.prompt_len + step], 30)
            text_ax.set_title(f"{label}\nstep {step + 1}/{trace.n_steps}: writing {token}", fontsize=9, loc="left")
            _draw_images_row(fig, grid, r, row, shown, images, lut, gamma, render_cfg)
        return _save(fig, path, dpi=110)


def _draw_images_row(fig, grid, r, row, shown, images, lut, gamma, render_cfg) -> None:
    if not shown:
        return
    positions = np.concatenate([np.asarray(g.positions) for g in shown])
    joint = np.zeros(len(row), dtype=np.float32)
    joint[positions] = normalize_weights(row[positions], gamma)  # images share one scale, as in the video
    best_pos = int(positions[np.argmax(row[positions])])
    for c, geo in enumerate(shown, start=1):
        ax = fig.add_subplot(grid[r, c])
        best = divmod(best_pos - geo.token_start, geo.grid_w) if best_pos in geo.positions else None
        _draw_image(ax, images[geo.index], geo, weights_to_rgb(geo.cell_weights(joint), lut), render_cfg, best)
        ax.set_title(f"image {geo.index + 1}", fontsize=9)


def write_share_plot(trace: Trace, layer: int, path: Path, *, max_layers: int = 12) -> Path:
    """Share of each step's row on image / text / special tokens (stacked), and the image share per layer."""
    shares = attention_shares(trace, layer)  # (T, 3)
    steps = np.arange(1, trace.n_steps + 1)
    others = trace.layers if len(trace.layers) <= max_layers else _spread(trace.layers, max_layers)
    with matplotlib.rc_context(RC):
        n_axes = 2 if len(trace.layers) > 1 else 1
        fig = Figure(figsize=(max(6.0, min(14.0, 0.22 * trace.n_steps + 3)), 2.9 * n_axes + 0.6),
                     layout="constrained")
        axes = fig.subplots(n_axes, 1, sharex=True, squeeze=False)[:, 0]
        axes[0].stackplot(steps, shares.T, labels=SHARE_KINDS, colors=SHARE_COLORS, step="mid")
        axes[0].set_ylim(0, 1)
        axes[0].set_ylabel("share of the row")
        axes[0].set_title(f"layer {layer}: where the attention that produced each token went", loc="left")
        axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
        if n_axes == 2:
            for other in others:
                axes[1].plot(steps, attention_shares(trace, other)[:, 0], lw=2.2 if other == layer else 1.0,
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
        labels = [_short(t, 12) for t in trace.token_texts[trace.prompt_len :]]
        ax.set_xticks(steps, labels, rotation=90, fontfamily="monospace", fontsize=7)
