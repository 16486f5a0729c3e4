"""The study report: every run under a folder that holds a ``metrics.json`` -> ``metrics.csv`` (one row per sample
× layer × segment), plots of the image share, its course along the answer and the ground-truth hits (mean over
samples, 95% bootstrap interval, one line per model), and ``report.html`` with a sortable table that links each
run's viewer page and video; for comparison jobs also ``compare.csv`` and a comparison section. Reads metrics.json,
metadata.json and compare.json only (never a trace); no torch, transformers or matplotlib.

    python -m attnviz.report multirun/2026-12-01/10-00-00 --layers 4,12,20
"""

from __future__ import annotations

from attnviz.report.build import CSV_NAME, PLOT_NAMES, NoMetrics, Options, Written, write_report
from attnviz.report.collect import COMPARE_CSV, METRICS_NAME
from attnviz.report.page import REPORT_NAME

__all__ = ["COMPARE_CSV", "CSV_NAME", "METRICS_NAME", "PLOT_NAMES", "REPORT_NAME", "NoMetrics", "Options", "Written",
           "write_report"]
