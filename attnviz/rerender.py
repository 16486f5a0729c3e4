"""Trace -> the run's outputs (video, viewer page, pictures, metadata.json) without a model.

Used after generation (:func:`finish_run`) and by ``render_only=<run dir>`` (:func:`rerender_run`); both go
through :func:`render_outputs`. Model-free: nothing here imports torch or transformers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from attnviz.checks import resolve_layer
from attnviz.clips import panel_images
from attnviz.errors import AttnvizError
from attnviz.files import (
    METADATA_NAME,
    METRICS_NAME,
    METRICS_STEPS_NAME,
    TRACE_DIR,
    input_image_name,
    video_name,
)
from attnviz.metadata import COMPLETE, ModelInfo, RunMetadata, TextStart
from attnviz.outputs import package_versions, prepare_run_dir, token_table
from attnviz.render import FrameRenderer, find_text_start, frame_count, render_frames
from attnviz.run_metrics import write_metrics
from attnviz.schema import AppConfig, MetricsConfig, ModelConfig, RenderConfig, ScorerConfig, VideoConfig
from attnviz.trace import Trace, atomic_write, load_trace, prune_trace
from attnviz.video import write_video
from attnviz.viewer import write_pictures
from attnviz.viewer.poster import KeyFrameTap, poster_steps

log = logging.getLogger(__name__)


def save_inputs(images: list[Image.Image], trace_dir: Path) -> None:
    """Keep the input images beside the rows, so a run re-renders without its dataset: one picture per geometry
    entry (a video's clip gives one per temporal patch, :func:`attnviz.clips.panel_images`)."""
    for index, image in enumerate(panel_images(images)):
        atomic_write(trace_dir / input_image_name(index), lambda f, img=image: img.save(f, format="PNG"))


def load_inputs(trace_dir: Path, count: int) -> list[Image.Image]:
    images = []
    for index in range(count):
        with Image.open(trace_dir / input_image_name(index)) as image:
            images.append(image.convert("RGB"))
    return images


def ground_truth_of(sample: dict[str, Any] | None, render_cfg: RenderConfig) -> str | None:
    """The sample field drawn as the ground-truth overlay (``render.overlay.ground_truth_key``), if any."""
    overlay = render_cfg.overlay
    if not sample or not overlay.ground_truth_key or not overlay.enabled:
        return None
    value = sample.get(overlay.ground_truth_key)
    return None if value is None else str(value)


@dataclass(frozen=True)
class RenderedVideo:
    path: Path | None  # None: no video was asked for (the poster's frames were drawn alone)
    text_start: TextStart
    key_frames: list[tuple[str, np.ndarray]]  # (caption, (H, W, 3) uint8) for the poster, in step order


def render_video_file(
    trace: Trace, layer: int, images: list[Image.Image], render_cfg: RenderConfig, video_cfg: VideoConfig,
    *, sample: dict[str, Any], start_phrase: str, run_dir: Path, make_video: bool = True,
) -> RenderedVideo:
    """Write ``combined_attention_visualization_layer{layer}.mp4`` and keep the poster's key frames on the way.

    ``sample``: the dataset sample (its id for the header, its ground truth for the overlay). ``make_video=False``:
    no MP4, only the poster's key frames are drawn (a study's sample without a video; render_only makes it later).
    """
    text_start, found = find_text_start(trace, start_phrase)
    if not found:
        log.warning("start_phrase %r not found; the text panel starts at the last assistant turn", start_phrase)
    if not make_video:
        renderer = FrameRenderer(
            trace, layer, images, render_cfg, video_cfg, sample_id=str(sample.get("id", "")), text_start=text_start,
            ground_truth=ground_truth_of(sample, render_cfg),
        )
        kept = [(caption, renderer.render(step)) for step, caption in poster_steps(trace, layer)]
        return RenderedVideo(None, TextStart(text_start, found), kept)
    video_path = run_dir / video_name(layer)
    frames = render_frames(
        trace, layer, images, render_cfg, video_cfg, sample_id=str(sample.get("id", "")), text_start=text_start,
        ground_truth=ground_truth_of(sample, render_cfg), reuse_buffer=True,
    )
    keys = poster_steps(trace, layer)
    tap = KeyFrameTap(step for step, _ in keys)
    write_video(tap(frames), video_path, video_cfg, total=frame_count(trace))
    kept = [(caption, tap.kept[step]) for step, caption in keys if step in tap.kept]
    return RenderedVideo(video_path, TextStart(text_start, found), kept)


@dataclass(frozen=True)
class Rendered:
    """What :func:`render_outputs` wrote: metadata's files, the text panel's start, timings."""

    files: dict[str, str]
    text_start: TextStart
    timings: dict[str, float]


def render_outputs(
    trace: Trace, layer: int, images: list[Image.Image], render_cfg: RenderConfig, video_cfg: VideoConfig,
    *, sample: dict[str, Any], start_phrase: str, run_dir: Path, trace_ref: str = TRACE_DIR, make_video: bool = True,
) -> Rendered:
    """The video (unless ``make_video`` is False), the viewer page, the poster and the share plot of ``layer``."""
    t0 = time.perf_counter()
    images = panel_images(images)  # a video's clip -> its temporal patches' pictures
    video = render_video_file(
        trace, layer, images, render_cfg, video_cfg, sample=sample, start_phrase=start_phrase, run_dir=run_dir,
        make_video=make_video,
    )
    timings = {"render_s": time.perf_counter() - t0}
    t0 = time.perf_counter()
    pictures = write_pictures(
        trace, layer, images, render_cfg, run_dir, sample_id=str(sample.get("id", "")),
        text_start=video.text_start.position, key_frames=video.key_frames,
    )
    timings["pictures_s"] = time.perf_counter() - t0
    made = {"video": video.path.name} if video.path is not None else {}
    return Rendered({**made, "trace": trace_ref, **pictures}, video.text_start, timings)


@dataclass(frozen=True)
class MetricsPlan:
    """How finish_run measures a run: the settings, the model's name in metrics.json, the rows kept afterwards."""

    metrics: MetricsConfig
    scorer: ScorerConfig
    render: RenderConfig  # sink groups and the ground truth's coordinates, as the video reads them
    model: str
    keep_layers: list[int] | None = None  # rows kept on disk once measured (None: every captured layer)


@dataclass
class RunRecord:
    """What metadata.json says about a generated run besides its outputs: model, sample, prompt, timings, config."""

    model: ModelInfo
    sample: dict[str, Any]
    prompt: str
    timings: dict[str, float]
    config: dict[str, Any]
    trace_cache: dict[str, Any] | None = None  # a sweep's shared trace: key, entry, generated
    metrics_plan: MetricsPlan | None = None  # None: no metrics, no scoring


def finish_run(
    record: RunRecord, trace: Trace, layer: int, images: list[Image.Image], render_cfg: RenderConfig,
    video_cfg: VideoConfig, *, start_phrase: str, run_dir: Path, make_video: bool = True,
) -> Path:
    """Render ``layer`` of ``trace`` into ``run_dir`` and write metadata.json (last); returns the video's path
    (metadata.json's with ``make_video=False``: every output but the MP4)."""
    sample = {"id": str(record.sample.get("id", "")), **{k: v for k, v in record.sample.items() if k != "id"}}
    images = panel_images(images)  # one picture per geometry entry (a video's temporal patches)
    # measured first: the rows of layers captured only for the metrics are gone before the page embeds layers
    correct, metric_files = measure(record.metrics_plan, trace, sample, images, run_dir)
    trace = kept_layers(trace, record.metrics_plan)
    out = render_outputs(
        trace, layer, images, render_cfg, video_cfg, sample=sample, start_phrase=start_phrase, run_dir=run_dir,
        make_video=make_video,
    )
    RunMetadata(
        status=COMPLETE, model=record.model, sample=sample, layer=layer, mode=trace.mode,
        captured_layers=trace.layers, captured_head_layers=trace.head_layers, prompt=record.prompt,
        generated_text=trace.generated_text(), prompt_len=trace.prompt_len, n_generated=trace.n_steps,
        n_frames=frame_count(trace), text_start=out.text_start, images=[asdict(g) for g in trace.images],
        tokens=token_table(trace), files={**out.files, **metric_files}, correct=correct,
        timings={**record.timings, **out.timings}, versions=package_versions(), config=record.config,
        trace_cache=record.trace_cache,
    ).save(run_dir)
    log.info("wrote %s", run_dir / out.files.get("video", METADATA_NAME))
    return run_dir / out.files.get("video", METADATA_NAME)


def kept_layers(trace: Trace, plan: MetricsPlan | None) -> Trace:
    """``trace`` with only the rows a run keeps once measured (all of them without a plan that drops some)."""
    if plan is None or plan.keep_layers is None:
        return trace
    keep = set(plan.keep_layers)
    return replace(trace, rows={ly: r for ly, r in trace.rows.items() if ly in keep},
                   heads={ly: h for ly, h in trace.heads.items() if ly in keep})


def metrics_plan(app: AppConfig, keep_layers: list[int] | None = None) -> MetricsPlan:
    """The run's metrics settings; metrics.json names the model by ``model.name`` (its folder for a custom one)."""
    name = app.model.name if app.model.name != ModelConfig.name else Path(app.model.path).name
    return MetricsPlan(app.metrics, app.scorer, app.render, name, keep_layers)


def measure(
    plan: MetricsPlan | None, trace: Trace, sample: dict[str, Any], images: list[Image.Image], run_dir: Path
) -> tuple[bool | None, dict[str, str]]:
    """Score the answer, write the metrics of every captured layer, then drop the rows kept only to measure them.
    Returns (correct, metadata's files entries)."""
    if plan is None:
        return None, {}
    t0 = time.perf_counter()
    result = write_metrics(
        trace, sample, [image.size for image in images], model=plan.model, render=plan.render,
        metrics=plan.metrics, scorer=plan.scorer, run_dir=run_dir,
    )
    if plan.keep_layers is not None:
        prune_trace(run_dir / TRACE_DIR, plan.keep_layers)
    log.info("metrics of %d layer(s) in %.2f s", len(result.layers), time.perf_counter() - t0)
    return result.correct, ({"metrics": METRICS_NAME, "metrics_steps": METRICS_STEPS_NAME} if result.layers else {})


def rerender_run(
    source: str | Path, layer_idx: int, render_cfg: RenderConfig, video_cfg: VideoConfig, start_phrase: str,
    run_dir: Path,
) -> Path:
    """Re-render a finished run's trace with another layer or style into ``run_dir``; no model is loaded."""
    source = Path(source).expanduser()
    if not (source / METADATA_NAME).is_file():
        raise AttnvizError(f"render_only={source} holds no {METADATA_NAME}; point it at a finished run directory")
    meta = RunMetadata.load(source)
    if not meta.complete or meta.model is None:
        raise AttnvizError(f"render_only={source} is not a complete run (status {meta.status!r}); re-run it")
    trace = load_trace(source / TRACE_DIR)
    layer = resolve_layer(layer_idx, meta.model.num_layers)
    if layer not in trace.layers:
        raise AttnvizError(
            f"layer_idx={layer_idx} was not captured in {source} (captured: {trace.layers}); "
            "generate again with capture.layers=all"
        )
    prepare_run_dir(run_dir, keep_metadata=run_dir.resolve() == source.resolve())
    images = load_inputs(source / TRACE_DIR, len(trace.images))
    out = render_outputs(
        trace, layer, images, render_cfg, video_cfg, sample=meta.sample, start_phrase=start_phrase,
        run_dir=run_dir, trace_ref=str(source / TRACE_DIR),
    )
    files = {**out.files, **copy_metrics(source, run_dir)}
    replace(
        meta, layer=layer, source_run=str(source.resolve()), files=files, text_start=out.text_start,
        timings=out.timings,
    ).save(run_dir)
    return run_dir / out.files["video"]


def copy_metrics(source: Path, run_dir: Path) -> dict[str, str]:
    """The source run's metrics files, beside a re-render in another folder (a report over that folder finds them);
    they measure the run as it was generated, whatever the new render settings."""
    copied = {}
    if source.resolve() == run_dir.resolve():
        return copied
    for key, name in (("metrics", METRICS_NAME), ("metrics_steps", METRICS_STEPS_NAME)):
        if (source / name).is_file():
            data = (source / name).read_bytes()
            atomic_write(run_dir / name, lambda f, data=data: f.write(data))
            copied[key] = name
    return copied
