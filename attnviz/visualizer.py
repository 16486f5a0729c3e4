"""The Python API (the predecessor's, kept) and the one place a generated run is carried out.

    viz = AttentionVisualizer("/ckpt/qwen2-vl", max_image_num=2)
    sample, images = viz.load_sample_data("test.json", "VLM", sample_idx=3)
    mp4 = viz.create_attention_visualization_for_sample(sample, images, layer_idx=20)

Settings are the config's own dataclasses (:mod:`attnviz.schema`) with the config's defaults: the keyword
constructor takes any group (``render=RenderConfig(colormap="viridis")``, ``model=ModelConfig(...)``), and
:meth:`AttentionVisualizer.from_config` takes a whole :class:`~attnviz.schema.AppConfig`, as the command line does.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from PIL import Image

from attnviz.baseline import write_generic_baseline
from attnviz.checks import choice, resolve_layer, resolve_layers
from attnviz.clips import Clip
from attnviz.data import Sample, load_sample, parse_sample, video_sampling
from attnviz.files import TRACE_DIR
from attnviz.metadata import ModelInfo
from attnviz.metrics import load_baseline
from attnviz.models.loading import load_model
from attnviz.outputs import prepare_run_dir
from attnviz.rerender import MetricsPlan, RunRecord, finish_run, metrics_plan, save_inputs
from attnviz.schema import (
    DEFAULT_START_PHRASE,
    AppConfig,
    Baseline,
    CaptureConfig,
    DatasetConfig,
    GenerationConfig,
    Mode,
    ModelConfig,
    RenderConfig,
    VideoConfig,
    to_data,
)
from attnviz.trace import Trace
from attnviz.tracing import CaptureRequest, PreparedSample, build_trace, build_traces, capture_request, prepare_sample

DEFAULTS = AppConfig()
PREDECESSOR_LAYER = 20  # the predecessor's default layer_idx in Python


class AttentionVisualizer:
    def __init__(
        self,
        model_path: str,
        max_image_num: int = DEFAULTS.max_image_num,
        *,
        output_dir: str | Path = ".",
        model: ModelConfig | None = None,
        dataset: DatasetConfig | None = None,
        generation: GenerationConfig | None = None,
        capture: CaptureConfig | None = None,
        render: RenderConfig | None = None,
        video: VideoConfig | None = None,
        mode: Mode | str = DEFAULTS.mode,
        device: str = DEFAULTS.device,
        dtype: str = DEFAULTS.dtype,
    ):
        """``model_path``: a local checkpoint folder; every other setting defaults as in the config."""
        app = AppConfig(
            model=replace(model or ModelConfig(), path=str(model_path)),
            dataset=dataset or DatasetConfig(),
            generation=generation or GenerationConfig(),
            capture=capture or CaptureConfig(),
            render=render or RenderConfig(),
            video=video or VideoConfig(),
            mode=choice(Mode, mode, "mode"),
            max_image_num=max_image_num,
            device=device,
            dtype=dtype,
        )
        self._start(app, Path(output_dir))

    @classmethod
    def from_config(cls, app: AppConfig, output_dir: str | Path = ".") -> AttentionVisualizer:
        """A visualiser for a composed, typed config (:func:`attnviz.config.typed`)."""
        viz = cls.__new__(cls)
        viz._start(app, Path(output_dir))
        return viz

    def _start(self, app: AppConfig, output_dir: Path) -> None:
        self.app, self.output_dir = app, output_dir
        self.mode = choice(Mode, app.mode, "mode")
        t0 = time.perf_counter()
        self.loaded = load_model(app.model, app.device, app.dtype)
        self.timings: dict[str, float] = {"load_s": time.perf_counter() - t0}

    # The settings groups, as attributes: ``viz.capture.layers = "all"`` before a run changes what it records.
    @property
    def generation(self) -> GenerationConfig:
        return self.app.generation

    @property
    def capture(self) -> CaptureConfig:
        return self.app.capture

    @property
    def render(self) -> RenderConfig:
        return self.app.render

    @property
    def video(self) -> VideoConfig:
        return self.app.video

    def load_sample_data(
        self, json_path: str, image_dir: str, sample_idx: int = DEFAULTS.sample_idx
    ) -> tuple[dict[str, Any], list[Image.Image | Clip]]:
        """The sample's JSON object and its images (RGB), then its video's sampled clip if it names one."""
        sample, images = load_sample(json_path, image_dir, sample_idx, self.app.max_image_num,
                                     video_sampling(self.app.dataset))
        return sample.fields, images

    def create_attention_visualization_for_sample(
        self,
        sample: dict[str, Any],
        images: list[Image.Image],
        layer_idx: int = PREDECESSOR_LAYER,
        start_phrase: str = DEFAULT_START_PHRASE,
        output_dir: str | Path | None = None,
    ) -> str:
        """Generate, capture, render; returns the MP4's path. metadata.json is written last."""
        run_dir = Path(output_dir) if output_dir is not None else self.output_dir
        prepare_run_dir(run_dir)  # clears an interrupted run's leftovers and its stale metadata.json
        layer = resolve_layer(layer_idx, self.loaded.num_layers)
        parsed = parse_sample(sample, 0)
        trace, prompt = self.generate_trace(parsed, images, [layer], run_dir / TRACE_DIR)
        save_inputs(images, run_dir / TRACE_DIR)
        app = replace(self.app, layer_idx=layer_idx, start_phrase=start_phrase)  # as metadata's config says
        record = RunRecord(self.model_info(), parsed.fields, prompt, self.timings, to_data(app),
                           metrics_plan=self.metrics_plan(keep_layers=self.capture_plan([layer], metrics=False).layers))
        return str(finish_run(
            record, trace, layer, images, app.render, app.video, start_phrase=start_phrase, run_dir=run_dir
        ))

    def generate_trace(
        self, sample: Sample, images: list[Image.Image], layers: list[int], trace_dir: Path
    ) -> tuple[Trace, str]:
        """One generation (or replay) streaming the rows of ``layers`` (+ capture.layers) into ``trace_dir``."""
        t0 = time.perf_counter()
        request = self.capture_plan(layers)
        trace, prompt = build_trace(
            self.loaded, sample, images, request, self.app.generation, self.app.dataset.prompt_template, trace_dir
        )
        if self.app.metrics.baseline == Baseline.generic:  # one more prefill: the same images, a neutral question
            write_generic_baseline(self.loaded, images, self.app.metrics.baseline_prompt, request.layers, trace_dir)
            trace = replace(trace, baseline=load_baseline(trace_dir))
        self.timings[f"{self.mode}_s"] = time.perf_counter() - t0
        return trace, prompt

    def prepare(self, sample: Sample, images: list[Image.Image]) -> PreparedSample:
        """The sample's prompt, model inputs and image geometry, for :meth:`generate_traces`."""
        return prepare_sample(self.loaded, sample, images, self.app.dataset.prompt_template)

    def generate_traces(
        self, batch: list[PreparedSample], layers: list[int], trace_dirs: list[Path], progress: bool = True
    ) -> list[Trace]:
        """Generate for ``batch`` together (one left-padded batch); each sample's trace, streamed into its
        ``trace_dirs`` entry, equals the one :meth:`generate_trace` makes for it alone (greedy decoding)."""
        t0 = time.perf_counter()
        request = self.capture_plan(layers)
        traces = build_traces(self.loaded, batch, request, self.app.generation, trace_dirs, progress)
        self.timings["generate_s"] = time.perf_counter() - t0
        return traces

    def capture_plan(self, layers: list[int], metrics: bool = True) -> CaptureRequest:
        """capture.* settings plus the absolute ``layers`` a caller needs (the video's, a sweep's) and, with
        ``metrics``, those ``metrics.layers`` measures (their rows are dropped once measured)."""
        n = self.loaded.num_layers
        base = capture_request(self.app.capture, layers[0], n, self.mode)
        measured = resolve_layers(self.app.metrics.layers, layers[0], n) if metrics and self.app.metrics.enabled else []
        wanted = sorted({*base.layers, *layers, *measured})
        heads = sorted({*base.layers, *layers}) if base.head_layers else []  # per-head rows only where rendered
        return replace(base, layers=wanted, head_layers=heads)

    def metrics_plan(self, keep_layers: list[int] | None = None) -> MetricsPlan:
        """How finish_run scores the answer and measures every captured layer."""
        return metrics_plan(self.app, keep_layers)

    def model_info(self) -> ModelInfo:
        loaded = self.loaded
        return ModelInfo(
            path=loaded.path,
            family=loaded.adapter.family,
            device=str(loaded.device),
            dtype=str(loaded.dtype).removeprefix("torch."),
            num_layers=loaded.num_layers,
        )
