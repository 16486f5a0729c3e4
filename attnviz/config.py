"""Typed schemas for every config group, registered in Hydra's ConfigStore.

The YAML files in ``conf/`` extend these schemas (``defaults: [<group>_schema]``), so a wrong type or an unknown
key fails when Hydra composes the config, before any model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REASON_RFT_PROMPT = (
    "{Question}  Output the thinking process in <think> </think> and final answer in <answer> </answer> tags."
)


@dataclass
class ModelConfig:
    path: str = MISSING  # local checkpoint folder (config + safetensors + processor files)
    name: str = "custom"
    default_layer: int = 20  # layer_idx when none is given on the command line
    # what computes the output (attnviz wraps it for the language model): auto = flash_attention_2 when installed
    # and on CUDA in half precision, else sdpa
    attn_implementation: str = "auto"
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


@dataclass
class GenerationConfig:
    max_new_tokens: int = 768
    do_sample: bool = False
    temperature: float = 0.1
    top_p: float = 0.9
    top_k: int = 50
    seed: int = 0


@dataclass
class CaptureConfig:
    # Layers whose rows one generation records: a list of indices (negative count from the end), "all", or
    # null for just layer_idx. The video's layer is always captured as well.
    layers: Any = None
    dtype: str = "float16"  # storage of the rows on disk: float16 | float32 (computed in float32 either way)
    heads: str = "mean"  # mean: head-averaged rows | all: per-head rows as well, for every captured layer
    replay_key: Optional[str] = None  # mode=replay: sample field holding the answer (None: pred, answer, solution)


@dataclass
class OverlayConfig:
    enabled: bool = True  # coordinates in the answer drawn on the images from the frame they are written
    # named groups x and y (and optional image: 1-based image number); default matches "(x, y)", "[x, y]"
    regex: str = (
        r"(?:image\s*(?P<image>\d+)\W{0,3})?[(\[]\s*(?P<x>-?\d+(?:\.\d+)?)\s*,\s*(?P<y>-?\d+(?:\.\d+)?)\s*[)\]]"
    )
    space: str = "norm1000"  # norm1000 | pixels | model_pixels | cells
    ground_truth_key: Optional[str] = "answer"  # sample field drawn as the ground truth; null: none
    segments: bool = True  # label the current <think> / <answer> segment in the header


@dataclass
class RenderConfig:
    colormap: str = "red_green"  # red (low) -> green (high), the predecessor's look; or a matplotlib name
    heads: Any = "mean"  # mean | max | a head index (max and one head need per-head rows in the trace)
    norm: str = "step"  # step: per-step min-max | global: one scale for all steps | log
    gamma: float = 0.4  # lifts mid-range weights after min-max scaling (step and global)
    log_decades: float = 3.0  # norm=log: decades below the step's maximum that the colour map spans
    # sink groups kept off the scale: bos, system, vision_markers, chat_template, special (attnviz.render.sinks)
    exclude: list[str] = field(default_factory=lambda: ["bos", "vision_markers", "chat_template"])
    exclude_positions: list[int] = field(default_factory=list)  # sequence positions kept off the scale
    image_mode: str = "cells"  # cells: exact cell tint | heatmap: smooth, interpolated between cell centres
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
    codec: str = "libx264"
    preset: str = "ultrafast"  # x264/x265 speed preset: the encoder, not the renderer, bounds frames/s
    pixel_format: str = "yuv420p"


@dataclass
class AppConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    video: VideoConfig = field(default_factory=VideoConfig)
    mode: str = "generate"  # generate: the model writes the answer | replay: teacher-force the stored answer
    sample_idx: int = 0
    layer_idx: int = "${model.default_layer}"  # type: ignore[assignment]  # negative counts from the end
    start_phrase: str = "Based on the following requirements"
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


GROUP_SCHEMAS: dict[str, Any] = {
    "model": ModelConfig,
    "dataset": DatasetConfig,
    "generation": GenerationConfig,
    "capture": CaptureConfig,
    "render": RenderConfig,
    "video": VideoConfig,
}


def register_configs() -> None:
    """Store the schemas; YAML group members name them in their defaults list."""
    cs = ConfigStore.instance()
    cs.store(name="app_schema", node=AppConfig)
    for group, schema in GROUP_SCHEMAS.items():
        cs.store(group=group, name=f"{group}_schema", node=schema)
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))
    if not OmegaConf.has_resolver("attnviz_subdir"):  # run directories of a sweep (conf/config.yaml, hydra:)
        from attnviz.sweep.layout import sweep_subdir

        OmegaConf.register_new_resolver("attnviz_subdir", sweep_subdir)
