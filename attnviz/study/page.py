"""study.json -> index.html: one row per sample linking its viewer page and video, failures with their error."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from attnviz.sweep.page import index_page
from attnviz.trace_store import atomic_write

LINKS = (("viewer", "viewer"), ("video", "video"), ("poster", "poster"), ("metadata", "metadata"))


def _link(base: str, name: str | None, text: str) -> str:
    if not name:
        return ""
    return f'<a href="{escape(f"{base}/{name}", quote=True)}">{escape(text)}</a>'


def _seconds(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else ""


def sample_row(entry: dict[str, Any]) -> str:
    files, timings = entry.get("files") or {}, entry.get("timings") or {}
    links = " ".join(filter(None, (_link(entry["dir"], files.get(key), text) for key, text in LINKS)))
    error = f'<div class="error">{escape(str(entry["error"]))}</div>' if entry.get("error") else ""
    cells = [
        f'<td class="num">{entry["index"]}</td>',
        f"<td>{escape(str(entry['id']))}</td>",
        f"<td>{escape(entry['status'])}</td>",
        f'<td class="num">{entry.get("n_generated") or ""}</td>',
        f'<td class="num">{_seconds(timings.get("generate_s"))}</td>',
        f'<td class="num">{_seconds(entry.get("render_s", timings.get("render_s")))}</td>',
        f"<td>{links}{error}</td>",
    ]
    return f'<tr class="{escape(entry["status"])}">{"".join(cells)}</tr>'


def summary_line(data: dict[str, Any]) -> str:
    line = f"{data['n_complete']} of {data['n_samples']} samples complete, {data['n_failed']} failed"
    if data.get("n_pending"):
        line += f", {data['n_pending']} not finished"
    costs = [f"{data['model_loads']} model load(s)"]
    for key, label in (("generate_s", "generation"), ("render_s", "rendering"), ("wall_s", "wall")):
        if data.get(key) is not None:
            costs.append(f"{label} {data[key]:.1f} s")
    return f"{line}; {', '.join(costs)}"


def render_page(data: dict[str, Any]) -> str:
    head = ["#", "id", "status", "tokens", "generate s", "render s", "outputs"]
    title = "attnviz study"
    if "n_jobs" in data:  # a multirun's merged index
        title += f" · {data['n_jobs']} jobs"
    elif data.get("num_shards", 1) > 1:
        title += f" · shard {data['shard']} of {data['num_shards']}"
    intro = [f"<p>{escape(summary_line(data))} (status: {escape(data['status'])}).</p>"]
    return index_page(title, intro, head, [sample_row(entry) for entry in data["samples"]])


def write_page(data: dict[str, Any], path: Path) -> Path:
    text = render_page(data)
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    return path
