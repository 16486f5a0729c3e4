"""One job of a sweep: skip it when done, share the sample's generation, record a failure without stopping.

Light: the model's code (torch, transformers) is imported only by the job that generates, through the
``make_visualizer`` callable it is handed.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from PIL import Image

from attnviz.checks import resolve_layer, resolve_layers
from attnviz.data import Sample
from attnviz.errors import AttnvizError
from attnviz.files import TRACE_DIR, TRACES_DIR
from attnviz.metadata import FAILED, ModelInfo, RunMetadata
from attnviz.outputs import prepare_run_dir
from attnviz.rerender import RunRecord, finish_run, metrics_plan
from attnviz.schema import AppConfig, to_data
from attnviz.sweep.cache import planned_layers, shared_trace, trace_key

if TYPE_CHECKING:
    from attnviz.visualizer import AttentionVisualizer

log = logging.getLogger(__name__)


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def trace_cache_dir(app: AppConfig) -> Path | None:
    """Where jobs share traces: ``trace_cache``, else ``<sweep dir>/.traces`` in a multirun; None: no sharing."""
    if app.trace_cache:
        return Path(app.trace_cache)
    if app.reuse_traces and in_multirun():
        return Path(HydraConfig.get().sweep.dir) / TRACES_DIR
    return None


def completed_video(run_dir: Path) -> Path | None:
    """The video of a finished run in ``run_dir`` (metadata.json says complete), else None."""
    try:
        meta = RunMetadata.load(run_dir)
    except (OSError, ValueError, TypeError):
        return None
    return run_dir / meta.files["video"] if meta.complete and meta.files.get("video") else None


def record_failure(run_dir: Path, err: BaseException, config: dict[str, Any]) -> None:
    """metadata.json with status failed and the error, so the sweep summary lists this job."""
    run_dir.mkdir(parents=True, exist_ok=True)
    RunMetadata(
        status=FAILED,
        error=f"{type(err).__name__}: {err}",
        traceback=None if isinstance(err, AttnvizError) else traceback.format_exc(),
        config=config,
    ).save(run_dir)


def run_shared(
    app: AppConfig,
    sample: Sample,
    images: list[Image.Image],
    run_dir: Path,
    cache_dir: Path,
    make_visualizer: Callable[[], AttentionVisualizer],
) -> Path:
    """Render this job's layer from the sample's shared trace, generating it only if no job did yet."""
    config = to_data(app)
    key = trace_key(config, sample.fields, images)
    plan = planned_layers(cache_dir)

    def own_layers(num_layers: int) -> list[int]:
        return resolve_layers(app.capture.layers, resolve_layer(app.layer_idx, num_layers), num_layers)

    def produce(extra_layers: list[int]) -> tuple[Any, dict[str, Any]]:
        viz = make_visualizer()  # the only place a sweep job loads the model
        n = viz.loaded.num_layers
        planned = [layer % n for layer in plan if -n <= layer < n]
        layers = sorted({*own_layers(n), *planned, *extra_layers})
        trace, prompt = viz.generate_trace(sample, images, layers, run_dir / TRACE_DIR)
        info = {"key": key, "model": asdict(viz.model_info()), "prompt": prompt, "timings": dict(viz.timings),
                "run_dir": str(run_dir), "slurm_job_id": os.environ.get("SLURM_JOB_ID")}
        return trace, info

    prepare_run_dir(run_dir)  # clears an interrupted run's leftovers and its stale metadata.json
    shared = shared_trace(
        cache_dir, key, run_dir, own_layers=own_layers, produce=produce, images=images, dtype=str(app.capture.dtype)
    )
    info = shared.info
    timings = dict(info["timings"]) if shared.generated else {}
    timings["trace_s"] = shared.wait_s  # waiting for the lock + loading (or generating + saving)
    model = ModelInfo.from_json(info["model"])
    cache = {"key": key, "entry": str(cache_dir / key), "generated": shared.generated}
    n = model.num_layers
    keep = sorted({*own_layers(n), *(layer % n for layer in plan if -n <= layer < n)})  # what the sweep renders
    record = RunRecord(model, sample.fields, info["prompt"], timings, config, trace_cache=cache,
                       metrics_plan=metrics_plan(app, keep))  # the shared entry keeps every layer
    layer = resolve_layer(app.layer_idx, model.num_layers)
    log.info("%s trace %s (layers %s)", "generated" if shared.generated else "reused", key, shared.trace.layers)
    return finish_run(
        record, shared.trace, layer, images, app.render, app.video, start_phrase=app.start_phrase, run_dir=run_dir
    )
