"""summary -> index.html: one table row per job, linking its video (and viewer page), and the share plot."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from attnviz.analysis import SHARE_KINDS
from attnviz.sweep.summary import all_complete, outcome
from attnviz.trace_store import atomic_write

STYLE = """
body { font-family: sans-serif; margin: 1.5em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.failed td, tr.incomplete td, tr.not-started td, tr.unknown td, tr.pending td, tr.running td { background: #fde8e8; }
.error { color: #a00; white-space: pre-wrap; max-width: 50em; }
"""


def index_page(title: str, intro: list[str], head: list[str], rows: list[str]) -> str:
    """A sweep's or a study's index.html: ``title``, ``intro`` (HTML paragraphs, already escaped) and a table of
    ``rows`` (``<tr>`` HTML, already escaped) under the ``head`` column names."""
    parts = [
        "<!doctype html>",
        f'<html><head><meta charset="utf-8"><title>{escape(title)}</title>',
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        *intro,
        "<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead><tbody>",
        *rows,
        "</tbody></table></body></html>",
    ]
    return "\n".join(parts) + "\n"


def link(href: str | None, text: str) -> str:
    return f'<a href="{escape(href, quote=True)}">{escape(text)}</a>' if href else ""


def _row(job: dict[str, Any], param_keys: list[str]) -> str:
    files = job.get("files") or {}
    share = job.get("attention_share") or {}
    cells = [escape(str(job["params"].get(key, ""))) for key in param_keys]
    cells.append(escape(job["status"]))
    shares = [f'<td class="num">{share[k]:.3f}</td>' if k in share else "<td></td>" for k in SHARE_KINDS]
    links = " ".join(filter(None, [link(files.get("video"), "video"), link(files.get("viewer"), "viewer"),
                                   link(files.get("poster"), "poster"),
                                   link(files.get("metadata"), "metadata")]))
    error = f'<div class="error">{escape(job["error"])}</div>' if job.get("error") else ""
    status_class = job["status"].replace(" ", "-")
    return (
        f'<tr class="{escape(status_class)}">' + "".join(f"<td>{c}</td>" for c in cells) + "".join(shares)
        + f"<td>{links}{error}</td><td>{escape(str(job.get('slurm_job_id') or ''))}</td></tr>"
    )


def _verdict(summary: dict[str, Any]) -> str:
    """A sweep with unfinished jobs says so above the table, in the words of the log line."""
    if all_complete(summary):
        return f"<p>{escape(outcome(summary))}.</p>"
    return (
        f'<p class="error">Not complete: {escape(outcome(summary))}. Failed runs show their error below; '
        "the others stopped before writing metadata.json or never started (re-run with skip_existing=true).</p>"
    )


def render_index(summary: dict[str, Any]) -> str:
    jobs = summary["jobs"]
    param_keys = sorted({key for job in jobs for key in job["params"]})
    head = [*param_keys, "status", *(f"{k} share" for k in SHARE_KINDS), "outputs", "SLURM job"]
    plot = summary["files"].get("plot")
    counts = ", ".join(f"{n} {status}" for status, n in sorted(summary["status_counts"].items()))
    intro = [
        f"<p>{escape(summary['sweep_dir'])}: {summary['n_jobs']} jobs ({escape(counts)}); "
        f"{summary['generate_calls']} generations.</p>",
        _verdict(summary),
        "<p>Share: the attention row that produced each generated token, at the run's layer, split by token kind "
        "and averaged over the generated tokens.</p>",
        f'<p><img src="{escape(plot, quote=True)}" alt="image-attention share per layer"></p>' if plot else "",
    ]
    return index_page("attnviz sweep", intro, head, [_row(job, param_keys) for job in jobs])


def write_index(summary: dict[str, Any], path: Path) -> Path:
    text = render_index(summary)
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    return path
