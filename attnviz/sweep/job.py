"""One job of a sweep: skip it when done, share the sample's generation, record a failure without stopping."""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from attnviz.data import Sample
from attnviz.errors import AttnvizError
from attnviz.outputs import prepare_run_dir, read_metadata, write_json_atomic
from attnviz.sweep.cache import planned_layers, shared_trace, trace_key
from attnviz.sweep.layout import TRACES_DIR
from attnviz.tracing import resolve_layer, resolve_layers
from attnviz.visualizer import AttentionVisualizer, RunRecord, finish_run

log = logging.getLogger(__name__)


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def trace_cache_dir(cfg: DictConfig) -> Path | None:
    """Where jobs share traces: ``trace_cache``, else ``<sweep dir>/.traces`` in a multirun; None: no sharing."""
    if cfg.get("trace_cache"):
        return Path(cfg.trace_cache)
    if cfg.get("reuse_traces") and in_multirun():
        return Path(HydraConfig.get().sweep.dir) / TRACES_DIR
    return None


def completed_video(run_dir: Path) -> Path | None:
    """The video of a finished run in ``run_dir`` (metadata.json says complete), else None."""
    try:
        meta = read_metadata(run_dir)
    except (OSError, ValueError):
        return None
    if meta.get("status") != "complete":
        return None
    return run_dir / meta.get("files", {}).get("video", "")


def record_failure(run_dir: Path, err: BaseException, cfg: DictConfig) -> None:
    """metadata.json with status failed and the error, so the sweep summary lists this job."""
    run_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "status": "failed",
        "error": f"{type(err).__name__}: {err}",
        "traceback": None if isinstance(err, AttnvizError) else traceback.format_exc(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "config": _plain(cfg),
    }
    write_json_atomic(run_dir / "metadata.json", payload)


def run_shared(
    cfg: DictConfig,
    sample: Sample,
    images: list[Image.Image],
    run_dir: Path,
    cache_dir: Path,
    make_visualizer: Callable[[], AttentionVisualizer],
) -> Path:
    """Render this job's layer from the sample's shared trace, generating it only if no job did yet."""
    key = trace_key(cfg, sample.fields, images)
    plan = planned_layers(cache_dir)

    def own_layers(num_layers: int) -> list[int]:
        return resolve_layers(cfg.capture.layers, resolve_layer(cfg.layer_idx, num_layers), num_layers)

    def produce(extra_layers: list[int]) -> tuple[Any, dict[str, Any]]:
        viz = make_visualizer()  # the only place a sweep job loads the model
        n = viz.loaded.num_layers
        planned = [layer % n for layer in plan if -n <= layer < n]
        layers = sorted({*own_layers(n), *planned, *extra_layers})
        trace, prompt = viz.generate_trace(sample, images, layers, run_dir / "trace")
        info = {"key": key, "model": viz.model_info(), "prompt": prompt, "timings": dict(viz.timings),
                "run_dir": str(run_dir), "slurm_job_id": os.environ.get("SLURM_JOB_ID")}
        return trace, info

    prepare_run_dir(run_dir)  # clears an interrupted run's leftovers and its stale metadata.json
    shared = shared_trace(
        cache_dir, key, run_dir, own_layers=own_layers, produce=produce, images=images, dtype=cfg.capture.dtype
    )
    info = shared.info
    timings = dict(info["timings"]) if shared.generated else {}
    timings["trace_s"] = shared.wait_s  # waiting for the lock + loading (or generating + saving)
    extra = {"trace_cache": {"key": key, "entry": str(cache_dir / key), "generated": shared.generated}}
    record = RunRecord(info["model"], sample.fields, info["prompt"], timings, _plain(cfg), extra)
    layer = resolve_layer(cfg.layer_idx, info["model"]["num_layers"])
    log.info("%s trace %s (layers %s)", "generated" if shared.generated else "reused", key, shared.trace.layers)
    return finish_run(
        record, shared.trace, layer, images, cfg.render, cfg.video, start_phrase=cfg.start_phrase, run_dir=run_dir
    )


def _plain(cfg: DictConfig) -> dict[str, Any]:
    try:
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except Exception:  # the failure may be the config itself: keep the interpolations as written
        return OmegaConf.to_container(cfg, resolve=False)  # type: ignore[return-value]
