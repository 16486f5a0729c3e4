"""The Hydra entry point: ``python run.py`` / ``attnviz`` compose conf/ and call :func:`run`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from attnviz.checks import check_layers, check_settings
from attnviz.config import PROJECT_ROOT, register_configs
from attnviz.data import load_sample
from attnviz.errors import AttnvizError, user_errors
from attnviz.rerender import rerender_run
from attnviz.sweep.job import completed_video, in_multirun, record_failure, run_shared, trace_cache_dir
from attnviz.visualizer import AttentionVisualizer

log = logging.getLogger("attnviz")
register_configs()


def run_dir_of(cfg: DictConfig) -> Path:
    if cfg.get("output_dir"):
        return Path(cfg.output_dir)
    return Path(HydraConfig.get().runtime.output_dir)


def processor_kwargs(model_cfg: DictConfig) -> dict[str, Any]:
    limits = {"min_pixels": model_cfg.min_pixels, "max_pixels": model_cfg.max_pixels}
    return {k: int(v) for k, v in limits.items() if v is not None}


@user_errors(run_dir_of, check_settings)  # also OSError (disk full, read-only folder) -> one AttnvizError line
def run(cfg: DictConfig) -> Path:
    """One run: model + sample + layer -> video, trace, metadata in the run directory. Returns the MP4 path."""
    if cfg.get("render_only"):
        return rerender_run(cfg.render_only, cfg.layer_idx, cfg.render, cfg.video, cfg.start_phrase, run_dir_of(cfg))
    run_dir = run_dir_of(cfg)
    done = completed_video(run_dir) if cfg.get("skip_existing") else None
    if done is not None:
        log.info("skip_existing: %s is complete", run_dir)
        return done
    # The dataset and the layers are checked before the model loads: a typo should not cost a checkpoint load.
    sample, images = load_sample(cfg.dataset.json, cfg.dataset.image_dir, cfg.sample_idx, cfg.max_image_num)
    check_layers(cfg)
    cache_dir = trace_cache_dir(cfg)
    if cache_dir is not None:  # a sweep: jobs that differ only in layer or rendering share one generation
        return run_shared(cfg, sample, images, run_dir, cache_dir, lambda: make_visualizer(cfg, run_dir))
    viz = make_visualizer(cfg, run_dir)
    video = viz.create_attention_visualization_for_sample(
        sample.fields, images, layer_idx=cfg.layer_idx, start_phrase=cfg.start_phrase
    )
    return Path(video)


def make_visualizer(cfg: DictConfig, run_dir: Path) -> AttentionVisualizer:
    return AttentionVisualizer(
        cfg.model.path,
        max_image_num=cfg.max_image_num,
        device=cfg.device,
        dtype=cfg.dtype,
        attn_implementation=cfg.model.attn_implementation,
        cuda_dtype=cfg.model.dtype,
        allow_pickle=cfg.model.allow_pickle,
        trust_remote_code=cfg.model.trust_remote_code,
        processor_kwargs=processor_kwargs(cfg.model),
        generation=cfg.generation,
        capture=cfg.capture,
        render=cfg.render,
        video=cfg.video,
        prompt_template=cfg.dataset.prompt_template,
        output_dir=run_dir,
        config=OmegaConf.to_container(cfg, resolve=True),
        mode=cfg.mode,
    )


# An absolute path: the same conf/ for `python run.py` and the `attnviz` console script (editable install).
@hydra.main(version_base="1.3", config_path=str(PROJECT_ROOT / "conf"), config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except Exception as err:
        if cfg.get("debug") or not (in_multirun() or isinstance(err, AttnvizError)):
            raise
        if not in_multirun():
            log.error("%s", err)
            sys.exit(2)
        # One failing job must not stop a sweep: record it; the summary lists it and the sweep exits non-zero.
        log.error("run failed: %s", err, exc_info=not isinstance(err, AttnvizError))
        record_failure(run_dir_of(cfg), err, cfg)
