"""``report.html``: one self-contained page (style, script, data and plots inline) that opens from disk offline.

The viewer's safety rules: the data goes in as JSON inside a ``<script type="application/json">`` block with
``<``, ``>`` and ``&`` escaped, the script builds the DOM with ``textContent`` only, and a Content-Security-Policy
allows exactly the page's own script and style (by hash), ``data:`` images and no connection at all. Sample ids
and model names are whatever a dataset or a path held: here they can only ever be text.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from attnviz.report.aggregate import CORRECT, INCORRECT, UNKNOWN, Line, Series, Study, model_order
from attnviz.trace_store import atomic_write
from attnviz.viewer.page import self_contained_page

REPORT_NAME = "report.html"
SKIPPED_SHOWN = 50  # the page lists this many skipped files; the count covers them all


def _finite(value: Any) -> Any:
    """NaN (a point no sample has a value for) as null: JSON has no NaN, and the page's JSON.parse refuses it."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _line(line: Line) -> dict[str, Any]:
    return {k: _finite(v) for k, v in asdict(line).items()}


def summary(study: Study, runs: int) -> dict[str, Any]:
    """Counts for the page's first line: runs, samples (each counted once), correctness, per model."""
    totals = {g: sum(c[g] for c in study.groups.values()) for g in (CORRECT, INCORRECT, UNKNOWN)}
    models = [{"model": m, "samples": sum(study.groups[m].values())} for m in model_order(study)]
    return {"runs": runs, "samples": study.samples, "duplicates": study.duplicates, "models": models, **totals}


def page_data(title: str, study: Study, series: Series, plots: list[dict[str, str]], *, csv: str,
              table_note: str) -> dict[str, Any]:
    """Everything the page shows, as plain JSON (the plots' PNGs base64-encoded)."""
    return {
        "title": title,
        "summary": summary(study, len(study.table)),
        "skipped": {"count": len(study.skipped),
                    "shown": [{"path": p, "why": w} for p, w in study.skipped[:SKIPPED_SHOWN]]},
        "plots": plots,
        "csv": csv,
        "table_note": table_note,
        "rows": [{k: _finite(v) for k, v in row.items()} for row in study.table],
        "series": {
            "image_share": [_line(x) for x in series.image_share],
            "position": [_line(x) for x in series.position],
            "position_layers": series.position_layers,
            "gt_share": [_line(x) for x in series.gt_share],
            "hit": [_line(x) for x in series.hit],
        },
    }


def render_report(data: dict[str, Any]) -> str:
    """The page's full HTML text for ``data`` (see :func:`page_data`)."""
    names = ("report.html", "report.css", ("report.js",))
    return self_contained_page("attnviz.report", names, data, data.get("title") or "attnviz report")


def write_report_page(data: dict[str, Any], path: Path) -> Path:
    """Write the page (temp name, then rename)."""
    text = render_report(data)
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    return path
