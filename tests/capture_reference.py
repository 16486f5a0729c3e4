"""The reference every capture test compares against: transformers' eager attention with output_attentions."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from attnviz.capture import RowRecorder, recording
from attnviz.capture.recorder import MemorySink


def _set_text_attention(model: Any, name: str) -> None:
    if hasattr(model.config, "vision_config"):
        model.set_attn_implementation({"text_config": name, "vision_config": "sdpa"})
    else:
        model.set_attn_implementation(name)


def _text_attention(model: Any) -> str:
    config = getattr(model.config, "text_config", model.config)
    return config._attn_implementation


def with_answer(inputs: dict[str, Any], sequences: torch.Tensor) -> dict[str, Any]:
    """Processor inputs (B, P) + generated sequences (B, S) -> forward inputs over the whole sequence."""
    extra = sequences.shape[1] - inputs["input_ids"].shape[1]
    forward = dict(inputs, input_ids=sequences)
    for name, value in inputs.items():
        if name == "attention_mask" or name.endswith("token_type_ids"):  # answer tokens: attended, type 0 (text)
            fill = 1 if name == "attention_mask" else 0
            forward[name] = torch.cat([value, value.new_full((value.shape[0], extra), fill)], dim=1)
    return forward


def eager_attentions(model: Any, forward: dict[str, Any]) -> tuple[torch.Tensor, ...]:
    """Per layer (B, H, S, S) eager attention probabilities of one forward pass over ``forward``."""
    previous = _text_attention(model)
    _set_text_attention(model, "eager")
    try:
        with torch.no_grad():
            return model(**forward, output_attentions=True).attentions
    finally:
        _set_text_attention(model, previous)


def generate_captured(
    model: Any, inputs: dict[str, Any], layers, head_layers=(), **generate_kwargs
) -> tuple[torch.Tensor, MemorySink]:
    """Greedy generate while capturing into memory; returns the (B, S) sequences and the sink."""
    sink = MemorySink()
    recorder = RowRecorder(layers, sink, head_layers)
    generate_kwargs = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None, **generate_kwargs}
    with torch.no_grad(), recording(recorder):
        sequences = model.generate(**inputs, **generate_kwargs)
    return sequences, sink


def plain_generate(model: Any, inputs: dict[str, Any], inner: str = "sdpa", **generate_kwargs) -> torch.Tensor:
    previous = _text_attention(model)
    _set_text_attention(model, inner)
    generate_kwargs = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None, **generate_kwargs}
    try:
        with torch.no_grad():
            return model.generate(**inputs, **generate_kwargs)
    finally:
        _set_text_attention(model, previous)


def max_row_error(sink: MemorySink, attentions, layers, prompt_len: int, heads: bool = False) -> float:
    """Largest |captured - eager| over every step, layer and batch element (checks shapes on the way)."""
    worst = 0.0
    for layer in layers:
        steps = (sink.heads if heads else sink.rows)[layer]
        assert steps, f"layer {layer}: no rows captured"
        for step, got in enumerate(steps):
            query = prompt_len - 1 + step  # the position whose output chose answer token `step`
            ref = attentions[layer][:, :, query, : query + 1].float().cpu()  # (B, H, K)
            expected = (ref if heads else ref.mean(dim=1)).numpy()
            assert got.shape == expected.shape, (layer, step, got.shape, expected.shape)
            worst = max(worst, float(np.abs(got.astype(np.float64) - expected).max()))
    return worst
