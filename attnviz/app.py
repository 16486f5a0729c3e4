"""The Hydra entry point: ``python run.py`` / ``attnviz`` compose ``conf/``; :func:`run` turns the composed config
into the typed settings once (:func:`attnviz.config.typed`) and hands typed groups down.

Light on purpose: torch and transformers are imported only when a model is about to load, so ``render_only``,
a skipped sweep job and a bad setting answer in a second.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from attnviz.checks import check_layers, check_settings
from attnviz.config import PROJECT_ROOT, plain, register_configs, typed
from attnviz.data import load_sample, video_sampling
from attnviz.errors import AttnvizError, ensure_writable, user_errors
from attnviz.schema import AppConfig
from attnviz.sweep.job import completed_video, in_multirun, record_failure, trace_cache_dir

log = logging.getLogger("attnviz")
register_configs()


def run_dir_of(output_dir: str | None) -> Path:
    """``output_dir`` when set, else the directory Hydra made for this run."""
    return Path(output_dir) if output_dir else Path(HydraConfig.get().runtime.output_dir)


def run(cfg: DictConfig) -> Path:
    """One run from a composed config: typed settings, checks, then :func:`execute`. Returns the MP4's path."""
    with user_errors():
        app = typed(cfg)
        check_settings(app)
        run_dir = run_dir_of(app.output_dir)
    with user_errors(run_dir):  # also OSError (disk full, read-only folder) -> one AttnvizError line
        ensure_writable(run_dir)
        return execute(app, run_dir)


def execute(app: AppConfig, run_dir: Path) -> Path:
    """model + sample + layer -> video, trace, viewer, metadata in ``run_dir`` (or a re-render of a finished run)."""
    if app.render_only:
        from attnviz.rerender import rerender_run  # no model: neither torch nor transformers is imported

        return rerender_run(app.render_only, app.layer_idx, app.render, app.video, app.start_phrase, run_dir)
    if app.compare.models:  # a comparison: each checkpoint reads the samples in turn (attnviz/compare)
        from attnviz.compare.runner import run_compare

        run_compare(app, run_dir)
        return run_dir / "report.html"
    if app.samples is not None:  # a study: many samples, one model load (attnviz/study)
        from attnviz.study.runner import run_study

        run_study(app, run_dir)
        return run_dir / "index.html"
    done = completed_video(run_dir) if app.skip_existing else None
    if done is not None:
        log.info("skip_existing: %s is complete", run_dir)
        return done
    # The dataset and the layers are checked before the model loads: a typo should not cost a checkpoint load.
    sample, images = load_sample(app.dataset.json, app.dataset.image_dir, app.sample_idx, app.max_image_num,
                                 video_sampling(app.dataset))
    check_layers(app)
    from attnviz.visualizer import AttentionVisualizer  # torch and transformers: only now

    def make_visualizer() -> AttentionVisualizer:
        return AttentionVisualizer.from_config(app, run_dir)

    cache_dir = trace_cache_dir(app)
    if cache_dir is not None:  # a sweep: jobs that differ only in layer or rendering share one generation
        from attnviz.sweep.job import run_shared

        return run_shared(app, sample, images, run_dir, cache_dir, make_visualizer)
    video = make_visualizer().create_attention_visualization_for_sample(
        sample.fields, images, layer_idx=app.layer_idx, start_phrase=app.start_phrase
    )
    return Path(video)


def config_record(cfg: DictConfig) -> dict:
    """The config as metadata records it; unresolved when resolving it is what failed."""
    try:
        return plain(cfg)
    except Exception:
        return OmegaConf.to_container(cfg, resolve=False)  # type: ignore[return-value]


# An absolute path: the same conf/ for `python run.py` and the `attnviz` console script (editable install).
@hydra.main(version_base="1.3", config_path=str(PROJECT_ROOT / "conf"), config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except Exception as err:
        # the raw config is read here, at the entry: the typed one may be what failed
        if cfg.get("debug") or not (in_multirun() or isinstance(err, AttnvizError)):
            raise
        if not in_multirun():
            log.error("%s", err)
            sys.exit(2)
        # One failing job must not stop a sweep: record it; the summary lists it and the sweep exits non-zero.
        log.error("run failed: %s", err, exc_info=not isinstance(err, AttnvizError))
        record_failure(run_dir_of(cfg.get("output_dir")), err, config_record(cfg))
