"""The sweep's Hydra callback: plan the shared traces at the start, write the summary at the end."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from attnviz.files import INDEX_HTML, TRACES_DIR
from attnviz.sweep.cache import add_planned_layers
from attnviz.sweep.overrides import from_config
from attnviz.sweep.plan import sweep_layers
from attnviz.sweep.summary import all_complete, expected_jobs, outcome, unfinished, write_summary

log = logging.getLogger(__name__)


def cache_dir_of(config: DictConfig) -> Path | None:
    if config.get("trace_cache"):
        return Path(config.trace_cache)
    if config.get("reuse_traces"):
        return Path(config.hydra.sweep.dir) / TRACES_DIR
    return None


class SweepSummary(Callback):
    """Registered in conf/config.yaml (hydra.callbacks); runs in the process that launches the sweep."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.perf_counter()
        cache_dir = cache_dir_of(config)
        layers = sweep_layers(from_config(config))
        if cache_dir is not None and layers:
            # Whichever job of a sample runs first captures every layer the sweep renders.
            add_planned_layers(cache_dir, layers)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if config.get("compare") and config.compare.get("models"):  # jobs are comparisons: one pooled report
            end_compare_sweep(sweep_dir, expected_jobs(config))
            return
        if config.get("samples") is not None:  # jobs are studies (shards): one merged study index instead
            end_study(sweep_dir, expected_jobs(config))
            return
        try:
            summary = write_summary(sweep_dir, expected_jobs(config), time.perf_counter() - self.started)
        except Exception:
            # Hydra turns a callback's exception into a warning; a sweep without its summary is not a success.
            log.exception("writing the sweep summary failed")
            sys.exit(1)
        done = all_complete(summary)
        (log.info if done else log.error)(
            "sweep: %s, %d generations; %s", outcome(summary), summary["generate_calls"], sweep_dir / INDEX_HTML
        )
        if not done:
            for line in unfinished(summary):
                log.error("%s", line)
            # SystemExit is not an Exception: Hydra lets it through, so the sweep's exit code says it failed.
            sys.exit(1)


def end_compare_sweep(sweep_dir: Path, expected: list[list[str]] | None) -> None:
    """Check every comparison job and write the pooled report into the sweep folder; exit 1 unless all complete."""
    from attnviz.compare.sweep import end_compare

    try:
        data = end_compare(sweep_dir, None if expected is None else len(expected))
    except Exception:
        log.exception("writing the comparison report failed")
        sys.exit(1)
    (log.info if data["complete"] else log.error)(
        "compare: %d of %d samples compared in %d of %d job(s); %s", data["n_compared"], data["n_samples"],
        data["n_finished_jobs"], data["n_jobs"], sweep_dir / "report.html")
    if not data["complete"]:
        sys.exit(1)


def end_study(sweep_dir: Path, expected: list[list[str]] | None) -> None:
    """Merge the jobs' study indexes into ``<sweep dir>/study.json`` + index.html; exit 1 unless all complete."""
    from attnviz.study.merge import write_merged

    try:
        data = write_merged(sweep_dir, None if expected is None else len(expected))
    except Exception:
        log.exception("writing the merged study index failed")
        sys.exit(1)
    done = data["status"] == "complete"
    (log.info if done else log.error)(
        "study: %d of %d samples complete, %d failed, %d job(s), %d model load(s); %s", data["n_complete"],
        data["n_samples"], data["n_failed"], data["n_jobs"], data["model_loads"], sweep_dir / INDEX_HTML,
    )
    if not done:
        sys.exit(1)
