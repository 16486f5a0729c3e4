"""``<job>/index.html`` of a comparison: one row per sample, its state, the divergence at the video's layer, and
links to its comparison page and video and to every model's own viewer. Model-free."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from attnviz.study.state import SAMPLES_DIR
from attnviz.sweep.page import index_page, link
from attnviz.trace_store import atomic_write

INDEX = "index.html"


def _sample_row(entry: dict[str, Any], record: dict[str, Any]) -> str:
    files, base = entry.get("files") or {}, entry["dir"]
    links = [link(f"{base}/{files['viewer']}" if files.get("viewer") else None, "comparison")]
    videos = sorted((files.get("videos") or {}).items())
    links += [link(f"{base}/{video}", f"video L{layer}") for layer, video in videos]
    links += [link(f"{m['dir']}/{SAMPLES_DIR}/{entry['name']}/viewer.html", m["label"]) for m in record["models"]]
    js = entry.get("js_divergence") or {}
    layer = str(record["models"][0]["layer"])
    cells = [f"{escape(m)}: {v[layer]:.3f}" for m, v in js.items() if v.get(layer) is not None]
    error = f'<div class="error">{escape(entry["error"])}</div>' if entry.get("error") else ""
    status = "complete" if entry["status"] == "complete" else "failed"
    return (f'<tr class="{status}"><td>{escape(str(entry["id"]))}</td><td>{escape(entry["status"])}</td>'
            f'<td class="num">{"<br>".join(cells)}</td><td>{" ".join(filter(None, links))}{error}</td></tr>')


def write_index(job_dir: Path, record: dict[str, Any]) -> Path:
    """The job's index.html from its compare.json data (written atomically)."""
    models = ", ".join(f"{m['label']} ({m['path']}, layer {m['layer']})" for m in record["models"])
    intro = [f"<p>{escape(models)}; reference {escape(record['reference'])}; answer {escape(record['answer'])}. "
             f"{record['n_compared']} of {record['n_samples']} samples compared.</p>",
             *(f"<p>{escape(line)}.</p>" for line in record["layer_matching"]),
             '<p><a href="report.html">report</a> (metrics per layer side by side, paired differences, the samples '
             "that changed most)</p>"]
    head = ["sample", "status", f"JS divergence at layer {record['models'][0]['layer']}", "outputs"]
    page = index_page(f"attnviz comparison: {job_dir.resolve().name}", intro, head,
                      [_sample_row(entry, record) for entry in record["samples"]])
    path = job_dir / INDEX
    atomic_write(path, lambda f: f.write(page.encode("utf-8")))
    return path
