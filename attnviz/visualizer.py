"""The Python API (the predecessor's, kept) and the one place a run is carried out.

    viz = AttentionVisualizer("/ckpt/qwen2-vl", max_image_num=2)
    sample, images = viz.load_sample_data("test.json", "VLM", sample_idx=3)
    mp4 = viz.create_attention_visualization_for_sample(sample, images, layer_idx=20)
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from PIL import Image

from attnviz.config import REASON_RFT_PROMPT, CaptureConfig, GenerationConfig, RenderConfig, VideoConfig
from attnviz.data import Sample, load_sample, parse_sample
from attnviz.models.loading import load_model
from attnviz.outputs import package_versions, prepare_run_dir, token_table, write_json_atomic
from attnviz.render import frame_count
from attnviz.rerender import render_video_file, save_inputs
from attnviz.trace import Trace
from attnviz.tracing import CaptureRequest, build_trace, capture_request, check_mode, resolve_layer
from attnviz.viewer import write_pictures

log = logging.getLogger(__name__)
ROW_SEMANTICS = (
    "frame t shows generated token t in blue and the head-averaged attention row of the query just before it "
    "(the row that produced token t; for t = 0 the prompt's last position)"
)


class AttentionVisualizer:
    def __init__(
        self,
        model_path: str,
        max_image_num: int = 2,
        *,
        device: str = "auto",
        dtype: str = "auto",
        attn_implementation: str = "sdpa",
        processor_kwargs: dict[str, Any] | None = None,
        cuda_dtype: str | None = None,
        allow_pickle: bool = False,
        trust_remote_code: bool = False,
        generation: Any = None,
        capture: Any = None,
        render: Any = None,
        video: Any = None,
        prompt_template: str = REASON_RFT_PROMPT,
        output_dir: str | Path = ".",
        config: dict[str, Any] | None = None,
        mode: str = "generate",
    ):
        self.mode = check_mode(mode)  # generate | replay (teacher-force the sample's stored answer)
        t0 = time.perf_counter()
        self.loaded = load_model(
            model_path, device, dtype, attn_implementation, processor_kwargs, cuda_dtype,
            allow_pickle=allow_pickle, trust_remote_code=trust_remote_code,
        )
        self.max_image_num = max_image_num
        self.generation = generation or GenerationConfig()
        self.capture = capture or CaptureConfig()
        self.render = render or RenderConfig()
        self.video = video or VideoConfig()
        self.prompt_template = prompt_template
        self.output_dir = Path(output_dir)
        self.config = config
        self.timings: dict[str, float] = {"load_s": time.perf_counter() - t0}

    def load_sample_data(
        self, json_path: str, image_dir: str, sample_idx: int = 0
    ) -> tuple[dict[str, Any], list[Image.Image]]:
        """The sample's JSON object and its images (RGB)."""
        sample, images = load_sample(json_path, image_dir, sample_idx, self.max_image_num)
        return sample.fields, images

    def create_attention_visualization_for_sample(
        self,
        sample: dict[str, Any],
        images: list[Image.Image],
        layer_idx: int = 20,
        start_phrase: str = "Based on the following requirements",
        output_dir: str | Path | None = None,
    ) -> str:
        """Generate, capture, render; returns the MP4's path. metadata.json is written last."""
        run_dir = Path(output_dir) if output_dir is not None else self.output_dir
        prepare_run_dir(run_dir)  # clears an interrupted run's leftovers and its stale metadata.json
        layer = resolve_layer(layer_idx, self.loaded.num_layers)
        parsed = parse_sample(sample, 0)
        trace, prompt = self.generate_trace(parsed, images, [layer], run_dir / "trace")
        save_inputs(images, run_dir / "trace")
        record = RunRecord(
            self.model_info(), parsed.fields, prompt, self.timings, self.config or _settings_dict(self)
        )
        video_path = finish_run(
            record, trace, layer, images, self.render, self.video, start_phrase=start_phrase, run_dir=run_dir
        )
        return str(video_path)

    def generate_trace(
        self, sample: Sample, images: list[Image.Image], layers: list[int], trace_dir: Path
    ) -> tuple[Trace, str]:
        """One generation (or replay) streaming the rows of ``layers`` (+ capture.layers) into ``trace_dir``."""
        t0 = time.perf_counter()
        request = self.capture_plan(layers)
        trace, prompt = build_trace(
            self.loaded, sample, images, request, self.generation, self.prompt_template, trace_dir
        )
        self.timings[f"{self.mode}_s"] = time.perf_counter() - t0
        return trace, prompt

    def capture_plan(self, layers: list[int]) -> CaptureRequest:
        """capture.* settings plus the absolute ``layers`` a caller needs (the video's, a sweep's)."""
        base = capture_request(self.capture, layers[0], self.loaded.num_layers, self.mode)
        wanted = sorted({*base.layers, *layers})
        return replace(base, layers=wanted, head_layers=wanted if base.head_layers else [])

    def model_info(self) -> dict[str, Any]:
        loaded = self.loaded
        return {
            "path": loaded.path,
            "family": loaded.adapter.family,
            "device": str(loaded.device),
            "dtype": str(loaded.dtype).removeprefix("torch."),
            "num_layers": loaded.num_layers,
        }


@dataclass
class RunRecord:
    """What metadata.json says about a run besides the trace: model, sample, prompt, timings, config."""

    model: dict[str, Any]
    sample: dict[str, Any]
    prompt: str
    timings: dict[str, float]
    config: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. where a shared trace came from


def finish_run(
    record: RunRecord, trace: Trace, layer: int, images: list[Image.Image], render_cfg: Any, video_cfg: Any,
    *, start_phrase: str, run_dir: Path,
) -> Path:
    """Render ``layer`` of ``trace`` into ``run_dir`` and write metadata.json (last); needs no model."""
    sample = record.sample
    t0 = time.perf_counter()
    video = render_video_file(
        trace, layer, images, render_cfg, video_cfg,
        sample_id=str(sample.get("id", "")), start_phrase=start_phrase, run_dir=run_dir, sample=sample,
    )
    timings = {**record.timings, "render_s": time.perf_counter() - t0}
    t0 = time.perf_counter()
    pictures = write_pictures(
        trace, layer, images, render_cfg, run_dir, sample_id=str(sample.get("id", "")), text_start=video.text_start,
        key_frames=video.key_frames,
    )
    timings["pictures_s"] = time.perf_counter() - t0
    payload = {
        "status": "complete",
        "model": record.model,
        "sample": {"id": str(sample.get("id", "")), **{k: v for k, v in sample.items() if k != "id"}},
        "layer": layer,
        "mode": trace.mode,
        "captured_layers": trace.layers,
        "captured_head_layers": trace.head_layers,
        "row_semantics": ROW_SEMANTICS,
        "prompt": record.prompt,
        "generated_text": trace.generated_text(),
        "prompt_len": trace.prompt_len,
        "n_generated": trace.n_steps,
        "n_frames": frame_count(trace),
        "text_start": {"position": video.text_start, "start_phrase_found": video.start_phrase_found},
        "images": [asdict(g) for g in trace.images],
        "tokens": token_table(trace),
        "files": {"video": video.path.name, "trace": "trace", **pictures},
        "timings": timings,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "versions": package_versions(),
        "config": record.config,
        **record.extra,
    }
    write_json_atomic(run_dir / "metadata.json", payload)
    log.info("wrote %s", video.path)
    return video.path


def _settings_dict(viz: AttentionVisualizer) -> dict[str, Any]:
    def plain(obj: Any) -> Any:
        return OmegaConf.to_container(obj, resolve=True) if OmegaConf.is_config(obj) else asdict(obj)

    groups = {"generation": viz.generation, "capture": viz.capture, "render": viz.render, "video": viz.video}
    return {name: plain(group) for name, group in groups.items()}
