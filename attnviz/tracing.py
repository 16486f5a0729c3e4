"""Sample + model -> Trace: build the prompt, generate (or replay) with capture streamed to disk, label tokens.

:func:`build_trace` does one sample; :func:`build_traces` generates a batch of prepared samples together (left
padding, :mod:`attnviz.capture.batch`), each trace equal to the one its sample gets alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from attnviz.capture.batch import BatchSink, collate
from attnviz.capture.generate import generate_batch_with_capture, generate_with_capture
from attnviz.capture.recorder import RowRecorder
from attnviz.capture.replay import answer_ids, answer_text, replay_with_capture
from attnviz.chat import ChatFormat
from attnviz.checks import choice, resolve_layers
from attnviz.clips import Clip
from attnviz.data import Sample
from attnviz.errors import AttnvizError
from attnviz.models.base import VIDEO_FAMILIES
from attnviz.models.loading import LoadedModel
from attnviz.models.tokens import special_token_ids, token_kinds, token_texts
from attnviz.schema import CaptureConfig, CaptureHeads, GenerationConfig, Mode, StorageDtype
from attnviz.trace import ImageGeometry, Trace, load_trace, trace_header
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


@dataclass
class PreparedSample:
    """One sample's model inputs, made alone (a batch of one) before any generation."""

    sample: Sample
    images: list[Image.Image | Clip]  # the sample's images, then its video's clip (attnviz.data.load_images)
    prompt: str
    chat_format: ChatFormat
    inputs: dict[str, Any]  # processor output: input_ids (1, P), attention_mask (1, P), pixel values, ...
    geometry: list[ImageGeometry]

    @property
    def prompt_len(self) -> int:
        return int(self.inputs["input_ids"].shape[1])


def prepare_sample(
    loaded: LoadedModel, sample: Sample, images: list[Image.Image | Clip], prompt_template: str
) -> PreparedSample:
    """Prompt, processor inputs (on the CPU) and geometry of ``sample``'s images and video (``images``: as
    :func:`attnviz.data.load_images` gives them); a prompt longer than the model's context, or a video for a family
    that takes none, is a one-line error."""
    adapter = loaded.adapter
    if any(isinstance(item, Clip) for item in images) and not adapter.video:
        raise AttnvizError(
            f"sample {sample.id} has a video but {adapter.family} takes no video in attnviz (video: "
            f"{VIDEO_FAMILIES}); remove its 'video' field or use a model of those families"
        )
    prompt, inputs, geometry = adapter.prepare(prompt_template.format(Question=sample.problem), images)
    prepared = PreparedSample(sample, images, prompt, adapter.chat_format(prompt), inputs, geometry)
    context = context_length(loaded.model)
    if context is not None and prepared.prompt_len > context:
        raise AttnvizError(
            f"sample {sample.id}: the prompt is {prepared.prompt_len} tokens, over the model's context of {context} "
            "(max_position_embeddings); shorten the question or lower model.max_pixels"
        )
    return prepared


def context_length(model: Any) -> int | None:
    config = getattr(model.config, "text_config", model.config)
    value = getattr(config, "max_position_embeddings", None)
    return int(value) if value else None


def on_device(inputs: dict[str, Any], device: Any) -> dict[str, Any]:
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in inputs.items()}


def build_trace(
    loaded: LoadedModel,
    sample: Sample,
    images: list[Image.Image | Clip],
    request: CaptureRequest,
    gen_cfg: GenerationConfig,
    prompt_template: str,
    trace_dir: str | Path,
) -> tuple[Trace, str]:
    """Run the model on ``sample``, streaming rows into ``trace_dir``; returns the (lazily loaded) trace and prompt."""
    prepared = prepare_sample(loaded, sample, images, prompt_template)
    writer = TraceWriter(trace_dir, request.layers, request.head_layers, request.dtype)
    try:
        answer = run_capture(loaded, on_device(prepared.inputs, loaded.device), request, gen_cfg, writer, sample.fields)
    except BaseException:
        writer.abort()
        raise
    return publish(loaded, prepared, answer, request.mode, writer), prepared.prompt


def build_traces(
    loaded: LoadedModel,
    batch: list[PreparedSample],
    request: CaptureRequest,
    gen_cfg: GenerationConfig,
    trace_dirs: list[Path],
    progress: bool = True,
) -> list[Trace]:
    """Generate for ``batch`` together (left-padded); each sample's trace equals the one generating it alone makes."""
    if request.mode != "generate":
        raise ValueError("only generation is batched; replay runs one sample at a time")
    writers = [TraceWriter(d, request.layers, request.head_layers, request.dtype) for d in trace_dirs]
    try:
        inputs, pads = collate([p.inputs for p in batch], pad_token_id(loaded))
        sink = BatchSink(writers, pads)
        recorder = RowRecorder(request.layers, sink, request.head_layers)
        answers = generate_batch_with_capture(
            loaded.model, on_device(inputs, loaded.device), recorder, gen_cfg, sink, progress
        )
        for writer, answer in zip(writers, answers, strict=True):
            if not answer or set(writer.n_rows.values()) != {len(answer)}:
                raise RuntimeError(f"captured {writer.n_rows} rows for {len(answer)} generated tokens")
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    return [publish(loaded, p, a, request.mode, w) for p, a, w in zip(batch, answers, writers, strict=True)]


def pad_token_id(loaded: LoadedModel) -> int:
    """The id put in padded positions (masked, so any id works): the tokenizer's pad, else end, else 0."""
    tokenizer = loaded.adapter.tokenizer
    for value in (tokenizer.pad_token_id, getattr(loaded.model.generation_config, "pad_token_id", None),
                  tokenizer.eos_token_id):
        if isinstance(value, int):
            return value
    return 0


def publish(loaded: LoadedModel, prepared: PreparedSample, answer: list[int], mode: str, writer: TraceWriter) -> Trace:
    """Label the tokens, write trace.json (last) and reload the trace lazily from disk."""
    adapter = loaded.adapter
    ids = prepared.inputs["input_ids"][0].tolist() + answer
    trace = Trace(
        token_ids=ids,
        token_texts=token_texts(adapter.tokenizer, ids),
        token_kinds=token_kinds(ids, adapter.visual_token_ids(), special_token_ids(adapter.tokenizer)),
        prompt_len=len(ids) - len(answer),
        images=prepared.geometry,
        mode=mode,
        chat_format=prepared.chat_format,
    )
    writer.finish(trace_header(trace))
    return load_trace(writer.directory)


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
