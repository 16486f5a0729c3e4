"""Sample + model -> Trace: build the prompt, generate (or replay) with capture streamed to disk, label tokens."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from attnviz.capture.generate import generate_with_capture
from attnviz.capture.recorder import RowRecorder
from attnviz.capture.replay import answer_ids, answer_text, replay_with_capture
from attnviz.data import Sample
from attnviz.errors import AttnvizError
from attnviz.models.loading import LoadedModel
from attnviz.models.tokens import special_token_ids, token_kinds, token_texts
from attnviz.trace import Trace, load_trace, trace_header
from attnviz.trace_store import TraceWriter

MODES = ("generate", "replay")
HEAD_CHOICES = ("mean", "all")


@dataclass(frozen=True)
class CaptureRequest:
    """What one run records: resolved layer indices, per-head layers, storage dtype, generate or replay."""

    layers: list[int]
    head_layers: list[int] = field(default_factory=list)
    dtype: str = "float16"
    mode: str = "generate"
    replay_key: str | None = None


def resolve_layer(layer_idx: int, num_layers: int) -> int:
    """Negative indices count from the end, as in Python."""
    if not -num_layers <= layer_idx < num_layers:
        raise AttnvizError(
            f"layer_idx={layer_idx} is out of range: the model has {num_layers} decoder layers "
            f"(0..{num_layers - 1}, or -{num_layers}..-1)"
        )
    return layer_idx % num_layers


def resolve_layers(spec: Any, layer: int, num_layers: int) -> list[int]:
    """capture.layers (None | "all" | list of indices) plus the video's layer -> sorted absolute indices."""
    if spec is None:
        chosen: list[int] = []
    elif isinstance(spec, str):
        if spec != "all":
            raise AttnvizError(f"capture.layers={spec!r}: use a list of layer indices, 'all' or null")
        chosen = list(range(num_layers))
    else:
        chosen = [resolve_layer(int(i), num_layers) for i in spec]
    return sorted({*chosen, layer})


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise AttnvizError(f"mode={mode!r}: use generate (the model writes the answer) or replay (a stored answer)")
    return mode


def capture_request(capture_cfg: Any, layer: int, num_layers: int, mode: str = "generate") -> CaptureRequest:
    """capture.* config + the video's layer -> a CaptureRequest, with one-line errors for bad values."""
    check_mode(mode)
    heads = getattr(capture_cfg, "heads", "mean")
    if heads not in HEAD_CHOICES:
        raise AttnvizError(f"capture.heads={heads!r}: use mean (head average) or all (per-head rows as well)")
    if capture_cfg.dtype not in ("float16", "float32"):
        raise AttnvizError(f"capture.dtype={capture_cfg.dtype!r}: rows are stored as float16 or float32")
    layers = resolve_layers(capture_cfg.layers, layer, num_layers)
    replay_key = getattr(capture_cfg, "replay_key", None)
    return CaptureRequest(layers, layers if heads == "all" else [], capture_cfg.dtype, mode, replay_key)


def build_trace(
    loaded: LoadedModel,
    sample: Sample,
    images: list[Image.Image],
    request: CaptureRequest,
    gen_cfg: Any,
    prompt_template: str,
    trace_dir: str | Path,
) -> tuple[Trace, str]:
    """Run the model on ``sample``, streaming rows into ``trace_dir``; returns the (lazily loaded) trace and prompt."""
    adapter = loaded.adapter
    prompt = adapter.build_prompt(prompt_template.format(Question=sample.problem), len(images))
    inputs = adapter.prepare_inputs(prompt, images)
    geometry = adapter.image_geometry(inputs)
    inputs = {k: v.to(loaded.device) if hasattr(v, "to") else v for k, v in inputs.items()}
    writer = TraceWriter(trace_dir, request.layers, request.head_layers, request.dtype)
    try:
        answer = run_capture(loaded, inputs, request, gen_cfg, writer, sample.fields)
    except BaseException:
        writer.abort()
        raise
    ids = inputs["input_ids"][0].tolist() + answer
    trace = Trace(
        token_ids=ids,
        token_texts=token_texts(adapter.tokenizer, ids),
        token_kinds=token_kinds(ids, adapter.image_token_id(), special_token_ids(adapter.tokenizer)),
        prompt_len=len(ids) - len(answer),
        images=geometry,
        mode=request.mode,
    )
    writer.finish(trace_header(trace))
    return load_trace(trace_dir), prompt


def run_capture(loaded, inputs, request: CaptureRequest, gen_cfg, writer: TraceWriter, fields) -> list[int]:
    """Generate or replay with the recorder writing into ``writer``; returns the answer token ids."""
    if request.mode == "generate":
        recorder = RowRecorder(request.layers, writer, request.head_layers)
        answer = generate_with_capture(loaded.model, inputs, recorder, gen_cfg)
        if not answer:
            raise AttnvizError("generation produced no tokens; raise generation.max_new_tokens")
        return answer
    _, text = answer_text(fields, request.replay_key)
    answer = answer_ids(loaded.adapter.tokenizer, text)
    prompt_len = inputs["input_ids"].shape[1]
    recorder = RowRecorder(request.layers, writer, request.head_layers, answer=(prompt_len, len(answer)))
    replay_with_capture(loaded.model, inputs, answer, recorder)
    return answer
