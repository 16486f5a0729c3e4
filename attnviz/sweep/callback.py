"""The sweep's Hydra callback: plan the shared traces at the start, write the summary at the end."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from attnviz.sweep.cache import add_planned_layers
from attnviz.sweep.layout import TRACES_DIR
from attnviz.sweep.plan import swept_layers
from attnviz.sweep.summary import expected_jobs, write_summary

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
        params = OmegaConf.select(config, "hydra.sweeper.params") or {}
        layers = swept_layers(config.hydra.overrides.task, params)
        if cache_dir is not None and layers:
            # Whichever job of a sample runs first captures every layer the sweep renders.
            add_planned_layers(cache_dir, layers)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            summary = write_summary(sweep_dir, expected_jobs(config), time.perf_counter() - self.started)
        except Exception:
            # Hydra turns a callback's exception into a warning; a sweep without its summary is not a success.
            log.exception("writing the sweep summary failed")
            sys.exit(1)
        log.info(
            "sweep: %d of %d runs complete, %d generations; %s",
            summary["n_complete"], summary["n_jobs"], summary["generate_calls"], sweep_dir / "index.html",
        )
        if summary["n_failed"]:
            for job in summary["jobs"]:
                if job["status"] != "complete":
                    log.error("%s %s: %s", job["dir"] or job["overrides"], job["status"], job.get("error"))
            # SystemExit is not an Exception: Hydra lets it through, so the sweep's exit code says it failed.
            sys.exit(1)
