"""Trace -> MP4 without a model: used after generation and by ``render_only=<run dir>``."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from attnviz.errors import AttnvizError
from attnviz.outputs import prepare_run_dir, read_metadata, video_name, write_json_atomic
from attnviz.render import find_text_start, frame_count, render_frames
from attnviz.trace import Trace, atomic_write, load_trace
from attnviz.tracing import resolve_layer
from attnviz.video import write_video
from attnviz.viewer import write_pictures
from attnviz.viewer.poster import KeyFrameTap, poster_steps

log = logging.getLogger(__name__)


def save_inputs(images: list[Image.Image], trace_dir: Path) -> None:
    """Keep the input images beside the rows, so a run re-renders without its dataset."""
    for index, image in enumerate(images):
        atomic_write(trace_dir / f"image_{index}.png", lambda f, img=image: img.save(f, format="PNG"))


def load_inputs(trace_dir: Path, count: int) -> list[Image.Image]:
    images = []
    for index in range(count):
        with Image.open(trace_dir / f"image_{index}.png") as image:
            images.append(image.convert("RGB"))
    return images


def ground_truth_of(sample: dict[str, Any] | None, render_cfg: Any) -> str | None:
    """The sample field drawn as the ground-truth overlay (``render.overlay.ground_truth_key``), if any."""
    overlay = getattr(render_cfg, "overlay", None)
    key = getattr(overlay, "ground_truth_key", None)
    if not sample or not key or not getattr(overlay, "enabled", False):
        return None
    value = sample.get(key)
    return None if value is None else str(value)


@dataclass(frozen=True)
class RenderedVideo:
    path: Path
    text_start: int  # first sequence position of the text panel
    start_phrase_found: bool
    key_frames: list[tuple[str, np.ndarray]]  # (caption, (H, W, 3) uint8) for the poster, in step order


def render_video_file(
    trace: Trace, layer: int, images: list[Image.Image], render_cfg: Any, video_cfg: Any,
    *, sample_id: str, start_phrase: str, run_dir: Path, sample: dict[str, Any] | None = None,
) -> RenderedVideo:
    """Write ``combined_attention_visualization_layer{layer}.mp4`` and keep the poster's key frames on the way.

    ``sample``: the dataset sample, for the ground-truth overlay.
    """
    text_start, found = find_text_start(trace, start_phrase)
    if not found:
        log.warning("start_phrase %r not found; the text panel starts at the last assistant turn", start_phrase)
    video_path = run_dir / video_name(layer)
    frames = render_frames(
        trace, layer, images, render_cfg, video_cfg, sample_id=sample_id, text_start=text_start,
        ground_truth=ground_truth_of(sample, render_cfg), reuse_buffer=True,
    )
    keys = poster_steps(trace, layer)
    tap = KeyFrameTap(step for step, _ in keys)
    write_video(tap(frames), video_path, video_cfg, total=frame_count(trace))
    kept = [(caption, tap.kept[step]) for step, caption in keys if step in tap.kept]
    return RenderedVideo(video_path, text_start, found, kept)


def rerender_run(
    source: str | Path, layer_idx: int, render_cfg: Any, video_cfg: Any, start_phrase: str, run_dir: Path
) -> Path:
    """Re-render a finished run's trace with another layer or style into ``run_dir``; no model is loaded."""
    source = Path(source).expanduser()
    if not (source / "metadata.json").is_file():
        raise AttnvizError(f"render_only={source} holds no metadata.json; point it at a finished run directory")
    meta = read_metadata(source)
    if meta.get("status") != "complete":
        raise AttnvizError(f"render_only={source} is not a complete run (status {meta.get('status')!r}); re-run it")
    trace = load_trace(source / "trace")
    layer = resolve_layer(layer_idx, int(meta["model"]["num_layers"]))
    if layer not in trace.layers:
        raise AttnvizError(
            f"layer_idx={layer_idx} was not captured in {source} (captured: {trace.layers}); "
            "generate again with capture.layers=all"
        )
    prepare_run_dir(run_dir, keep_metadata=run_dir.resolve() == source.resolve())
    t0 = time.perf_counter()
    images = load_inputs(source / "trace", len(trace.images))
    sample_id = str(meta["sample"].get("id", ""))
    video = render_video_file(
        trace, layer, images, render_cfg, video_cfg, sample_id=sample_id, start_phrase=start_phrase, run_dir=run_dir,
        sample=meta["sample"],
    )
    pictures = write_pictures(trace, layer, images, render_cfg, run_dir, sample_id=sample_id,
                              text_start=video.text_start, key_frames=video.key_frames)
    meta.update(
        layer=layer, source_run=str(source.resolve()),
        files={"video": video.path.name, "trace": str(source / "trace"), **pictures},
        text_start={"position": video.text_start, "start_phrase_found": video.start_phrase_found},
        timings={"render_s": time.perf_counter() - t0},
    )
    write_json_atomic(run_dir / "metadata.json", meta)
    return video.path
