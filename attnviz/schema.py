"""The typed settings of a run: one dataclass per config group, and Enums for every fixed choice.

This module is the single home of every default value: the YAML files in ``conf/`` extend these schemas (their
base members list nothing, presets only what they change) and the Python API builds the same dataclasses. Pure
standard library, so the renderer, the viewer and anything else that takes settings stays free of Hydra, torch
and transformers (:mod:`attnviz.config` registers these schemas with Hydra).

``MISSING`` ("???") marks a value the user must give (a checkpoint path); a choice field set to a name that is
not a member fails when Hydra composes the config, with the list of valid names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

MISSING: Any = "???"  # OmegaConf's marker for a mandatory value


class Choice(str, Enum):
    """A fixed choice: compares equal to its name as a string and prints as it."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class Mode(Choice):
    generate = "generate"  # the model writes the answer
    replay = "replay"  # teacher-force a stored answer in one pass


# "global" is a Python keyword, so this one is built with the functional API
Norm = Choice("Norm", [("step", "step"), ("global", "global"), ("log", "log")], module=__name__, qualname="Norm")
Norm.__doc__ = "step: per-step min-max | global: one scale for every frame | log: log10 over render.log_decades"


class ImageWeights(Choice):
    attention = "attention"  # the row's weights on the image cells
    relative = "relative"  # divided by the generic-prompt baseline (metrics.baseline=generic): why this question


class ImageMode(Choice):
    cells = "cells"  # each merged-patch cell tinted, exact edges
    heatmap = "heatmap"  # interpolated between cell centres


class Space(Choice):
    """What coordinates in an answer mean."""

    norm1000 = "norm1000"  # 0-1000 across the image (Qwen2-VL)
    pixels = "pixels"  # pixels of the image file
    model_pixels = "model_pixels"  # pixels of the image as the model saw it (Qwen2.5-VL)
    cells = "cells"  # merged-patch cell (column, row) from 0


class SinkGroup(Choice):
    bos = "bos"
    system = "system"
    vision_markers = "vision_markers"
    chat_template = "chat_template"
    special = "special"


class CaptureHeads(Choice):
    mean = "mean"  # head-averaged rows
    all = "all"  # per-head rows as well


class StorageDtype(Choice):
    float16 = "float16"
    float32 = "float32"


class AttnImplementation(Choice):
    auto = "auto"  # flash_attention_2 on CUDA in half precision when installed, else sdpa
    sdpa = "sdpa"
    eager = "eager"
    flash_attention_2 = "flash_attention_2"


REASON_RFT_PROMPT = (
    "{Question}  Output the thinking process in <think> </think> and final answer in <answer> </answer> tags."
)
DEFAULT_START_PHRASE = "Based on the following requirements"


@dataclass
class ModelConfig:
    path: str = MISSING  # local checkpoint folder (config + safetensors + processor files)
    name: str = "custom"
    default_layer: int = 20  # layer_idx when none is given on the command line
    # what computes the output (attnviz wraps it for the language model)
    attn_implementation: AttnImplementation = AttnImplementation.auto
    dtype: Optional[str] = None  # on CUDA when the run's dtype is auto (None: the checkpoint's saved dtype)
    allow_pickle: bool = False  # load .bin/.pt weights when no safetensors exist (unpickling can run code)
    trust_remote_code: bool = False  # run the checkpoint's own code when its config asks (auto_map) for it
    min_pixels: Optional[int] = None  # processor pixel limits (None: the checkpoint's own)
    max_pixels: Optional[int] = None


@dataclass
class DatasetConfig:
    name: str = "custom"
    json: str = MISSING  # Reason-RFT style JSON list of samples
    image_dir: str = MISSING  # image paths in the JSON are relative to this folder
    prompt_template: str = REASON_RFT_PROMPT
    # A sample's video (Qwen families): frames sampled per second (a folder of frames counts as this rate), then
    # at least / at most this many frames, in whole pairs (docs/families.md#video)
    video_fps: float = 2.0
    video_min_frames: int = 4
    video_max_frames: int = 16


@dataclass
class GenerationConfig:
    max_new_tokens: int = 768
    do_sample: bool = False  # greedy by default, so a run is reproducible; Reason-RFT samples with the values below
    temperature: float = 0.1
    top_p: float = 0.9
    top_k: int = 50
    seed: int = 0


@dataclass
class CaptureConfig:
    # Layers whose rows one generation records: a list of indices (negative count from the end), "all", or
    # null for just layer_idx. The video's layer is always captured as well.
    layers: Any = None
    dtype: StorageDtype = StorageDtype.float16  # rows on disk (computed in float32 either way)
    heads: CaptureHeads = CaptureHeads.mean  # all: per-head rows as well (H times the bytes)
    replay_key: Optional[str] = None  # mode=replay: sample field holding the answer (None: pred, answer, solution)


@dataclass
class OverlayConfig:
    enabled: bool = True  # coordinates in the answer drawn on the images from the frame they are written
    # named groups x and y (and optional image: 1-based image number); default matches "(x, y)", "[x, y]"
    regex: str = (
        r"(?:image\s*(?P<image>\d+)\W{0,3})?[(\[]\s*(?P<x>-?\d+(?:\.\d+)?)\s*,\s*(?P<y>-?\d+(?:\.\d+)?)\s*[)\]]"
    )
    space: Space = Space.norm1000
    ground_truth_key: Optional[str] = "answer"  # sample field drawn as the ground truth; null: none
    segments: bool = True  # label the current <think> / <answer> segment in the header


@dataclass
class RenderConfig:
    colormap: str = "red_green"  # red (low) -> green (high), the predecessor's look; or a matplotlib name
    heads: str = "mean"  # mean | max | a head index (max and one head need per-head rows in the trace)
    norm: Norm = Norm.step  # type: ignore[valid-type]
    gamma: float = 0.4  # lifts mid-range weights after min-max scaling (step and global)
    log_decades: float = 3.0  # norm=log: decades below the step's maximum that the colour map spans
    # sink groups kept off the scale (attnviz.sinks.sink_mask)
    exclude: list[SinkGroup] = field(
        default_factory=lambda: [SinkGroup.bos, SinkGroup.vision_markers, SinkGroup.chat_template]
    )
    exclude_positions: list[int] = field(default_factory=list)  # sequence positions kept off the scale
    image_mode: ImageMode = ImageMode.cells
    image_weights: ImageWeights = ImageWeights.attention  # relative needs metrics.baseline=generic
    tint_alpha: float = 0.45  # opacity of the tint over the image
    grid_lines: bool = True
    font_path: Optional[str] = None  # monospace font; None: search the system
    cjk_font_path: Optional[str] = None  # fallback for characters the font lacks; None: search the system
    font_size: int = 22
    overlay: OverlayConfig = field(default_factory=OverlayConfig)


@dataclass
class VideoConfig:
    width: int = 1920  # rounded down to even (yuv420p)
    height: int = 1080
    fps: float = 4.0
    crf: int = 23  # x264/x265 quality: lower is better and bigger
    codec: str = "auto"  # auto: h264_nvenc where a CUDA device has the encoder, else libx264; or any ffmpeg encoder
    preset: str = "ultrafast"  # x264/x265 speed preset: the encoder, not the renderer, bounds frames/s
    pixel_format: str = "yuv420p"


class Baseline(Choice):
    none = "none"
    generic = "generic"  # one extra prefill with a neutral prompt about the same images: relative attention


@dataclass
class MetricsConfig:
    """Grounding metrics (attnviz.metrics): per step, layer and segment; metrics.json in every run directory."""

    enabled: bool = True
    # Layers with metrics: all (their rows are captured, measured, then only capture.layers + the video's are kept
    # on disk), a list of indices, or null (the captured layers only).
    layers: Any = "all"
    region_radius: int = 0  # a ground-truth point's region: its cell grown by this many cells
    regions_key: Optional[str] = "regions"  # sample field of ground-truth boxes [x1, y1, x2, y2] (per image)
    baseline: Baseline = Baseline.none
    baseline_prompt: str = "Describe the image."


@dataclass
class ScorerConfig:
    """Is the answer right? ``_target_``: a function (prediction, truth, settings) -> True | False | None."""

    _target_: str = "attnviz.scoring.exact"  # exact | numeric | choice | points (attnviz.scoring), or your own
    key: Optional[str] = "answer"  # the sample field holding the ground truth; null: no scoring
    extract: bool = True  # compare what is inside <answer>…</answer> (the whole text when there is none)
    tolerance: float = 1e-6  # numeric: |a - b| <= tolerance · max(1, |b|)
    distance: float = 0.0  # points: every point within this distance of its ground-truth point
    regex: Optional[str] = None  # points: how a point is written (null: render.overlay.regex's default)


class CompareAnswer(Choice):
    """Which answer the compared models read."""

    pred = "pred"  # every model replays the sample's stored answer (capture.replay_key, else pred/answer/solution)
    first = "first"  # the first model generates; the others replay its tokens
    each = "each"  # each model generates its own answer: per-sample and study aggregates are compared, not tokens


@dataclass
class CompareConfig:
    """Checkpoints read side by side (attnviz/compare, docs/compare.md). No models: no comparison."""

    # Each entry: a conf/model preset name, a checkpoint folder, or a mapping of model.* keys plus optional
    # ``preset`` (the model preset it starts from) and ``label`` (its name in outputs). The first is the reference:
    # differences are every other model minus it.
    models: list[Any] = field(default_factory=list)
    answer: CompareAnswer = CompareAnswer.pred
    together: bool = False  # load every model at once and finish the samples one by one (memory: all models)
    model_videos: bool = False  # also each model's own video per sample (the comparison video shows them all)


@dataclass
class AppConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    video: VideoConfig = field(default_factory=VideoConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    scorer: ScorerConfig = field(default_factory=ScorerConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    mode: Mode = Mode.generate
    sample_idx: int = 0
    layer_idx: int = "${model.default_layer}"  # type: ignore[assignment]  # negative counts from the end
    start_phrase: str = DEFAULT_START_PHRASE
    max_image_num: int = 2
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    output_dir: Optional[str] = None  # None: Hydra's run directory
    render_only: Optional[str] = None  # a finished run directory: re-render its trace, load no model
    debug: bool = False  # full tracebacks instead of one-line errors
    # Sweeps (-m): jobs differing only in layer/render share one generation; see attnviz/sweep.
    skip_existing: bool = False  # skip a job whose run directory's metadata.json says status complete
    reuse_traces: bool = True  # multirun: one generation per (model, sample, prompt, generation settings)
    trace_cache: Optional[str] = None  # folder of shared traces; None: <sweep dir>/.traces in a multirun
    # Studies (samples=...): one job, many samples, the model loaded once; see attnviz/study and docs/studies.md.
    samples: Any = None  # null: one run of sample_idx | all | "start:stop[:step]" | a list of indices or ids
    shard: int = 0  # this job's part of the selection: every num_shards-th sample from the shard-th
    num_shards: int = 1
    batch_size: int = 1  # samples generated together (left padding, prompts sorted by length)
    render_workers: Optional[int] = None  # processes rendering outputs; None: the cores left over (>= 1); 0: inline
    videos: Any = "all"  # samples that get an MP4: all | none | the first k (an int) | a list of indices or ids


def to_data(settings: Any) -> Any:
    """Settings dataclasses as JSON-ready data: nested groups as dicts, choices by name."""
    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        return {f.name: to_data(getattr(settings, f.name)) for f in dataclasses.fields(settings)}
    if isinstance(settings, Enum):
        return settings.value
    if isinstance(settings, list | tuple):
        return [to_data(v) for v in settings]
    if isinstance(settings, dict):
        return {k: to_data(v) for k, v in settings.items()}
    return settings


GROUP_SCHEMAS: dict[str, type] = {
    "model": ModelConfig,
    "dataset": DatasetConfig,
    "generation": GenerationConfig,
    "capture": CaptureConfig,
    "render": RenderConfig,
    "video": VideoConfig,
    "metrics": MetricsConfig,
    "scorer": ScorerConfig,
    "compare": CompareConfig,
}
