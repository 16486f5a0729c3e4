"""The image-attention share per layer, one line per sample (per combination of the other swept values)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from attnviz.metadata import COMPLETE
from attnviz.sweep.plan import LAYER_KEY
from attnviz.trace_store import atomic_write


def share_series(jobs: list[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """Complete jobs -> {the values of the other swept keys: [(layer, image share), ...] sorted by layer}."""
    done = [job for job in jobs if job["status"] == COMPLETE and job.get("attention_share")]
    varied = sorted(
        key for key in {k for job in done for k in job["params"]}
        if key != LAYER_KEY and len({job["params"].get(key) for job in done}) > 1
    )
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for job in done:
        share = job["attention_share"]
        label = ", ".join(f"{k}={job['params'].get(k)}" for k in varied) or "all runs"
        series[label].append((int(job["layer"]), float(share["image"])))
    return {label: sorted(points) for label, points in sorted(series.items())}


def plot_image_share(jobs: list[dict[str, Any]], path: Path) -> Path | None:
    """Write the plot as PNG (Agg, no display needed); None when no job finished."""
    series = share_series(jobs)
    if not series:
        return None
    # Imported here: matplotlib costs about a second to import, and a sweep with no finished job draws nothing.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for label, points in series.items():
        layers, shares = zip(*points, strict=True)
        ax.plot(layers, shares, marker="o", label=label)
    ax.set_xlabel("layer")
    ax.set_ylabel("attention share on image tokens")
    ax.set_ylim(0, 1)
    ax.set_title("Image-attention share per layer (mean over generated tokens)")
    ax.grid(alpha=0.3)
    if len(series) <= 12:
        ax.legend(fontsize="small")
    ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    # Hidden temp name, then rename: a reader (the index page in a browser) never sees half a PNG.
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
    return path
