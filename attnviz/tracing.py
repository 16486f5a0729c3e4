"""Sample + model -> Trace: build the prompt, generate (or replay) with capture streamed to disk, label tokens."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from attnviz.capture.generate import generate_with_capture
from attnviz.capture.recorder import RowRecorder
from attnviz.capture.replay import answer_ids, answer_text, replay_with_capture
from attnviz.checks import choice, resolve_layers
from attnviz.data import Sample
from attnviz.errors import AttnvizError
from attnviz.models.loading import LoadedModel
from attnviz.models.tokens import special_token_ids, token_kinds, token_texts
from attnviz.schema import CaptureConfig, CaptureHeads, GenerationConfig, Mode, StorageDtype
from attnviz.trace import Trace, load_trace, trace_header
from attnviz.trace_store import TraceWriter


@dataclass(frozen=True)
class CaptureRequest:
    """What one run records: resolved layer indices, per-head layers, storage dtype, generate or replay."""

    layers: list[int]
    head_layers: list[int] = field(default_factory=list)
    dtype: str = "float16"
    mode: str = "generate"
    replay_key: str | None = None


def capture_request(
    capture_cfg: CaptureConfig, layer: int, num_layers: int, mode: Mode | str = Mode.generate
) -> CaptureRequest:
    """capture.* settings + the video's layer -> a CaptureRequest, with one-line errors for bad values."""
    mode = choice(Mode, mode, "mode")
    heads = choice(CaptureHeads, capture_cfg.heads, "capture.heads")
    dtype = choice(StorageDtype, capture_cfg.dtype, "capture.dtype")
    layers = resolve_layers(capture_cfg.layers, layer, num_layers)
    head_layers = layers if heads == CaptureHeads.all else []
    return CaptureRequest(layers, head_layers, dtype.value, mode.value, capture_cfg.replay_key)


def build_trace(
    loaded: LoadedModel,
    sample: Sample,
    images: list[Image.Image],
    request: CaptureRequest,
    gen_cfg: GenerationConfig,
    prompt_template: str,
    trace_dir: str | Path,
) -> tuple[Trace, str]:
    """Run the model on ``sample``, streaming rows into ``trace_dir``; returns the (lazily loaded) trace and prompt."""
    adapter = loaded.adapter
    prompt = adapter.build_prompt(prompt_template.format(Question=sample.problem), len(images))
    chat_format = adapter.chat_format(prompt)  # the template's markers, as the adapter states them
    inputs = adapter.prepare_inputs(prompt, images)
    geometry = adapter.image_geometry(inputs, [image.size for image in images])
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
        chat_format=chat_format,
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
