"""CUDA paths: SDPA and FlashAttention-2 kernels wrapped for capture, bf16 models; skipped without a GPU."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from attnviz.capture import register_capture
from tests.capture_reference import eager_attentions, generate_captured, max_row_error, plain_generate, with_answer
from tests.test_capture_families import QUESTIONS, _inputs

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
KERNELS = [
    "sdpa",
    pytest.param(
        "flash_attention_2",
        marks=pytest.mark.skipif(importlib.util.find_spec("flash_attn") is None, reason="flash-attn not installed"),
    ),
]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("batch", [1, 2])
def test_cuda_bf16_rows_match_eager_and_tokens_match_the_kernel(twin_dir, kernel, batch):
    folder = twin_dir("qwen2_vl")
    attn = {"text_config": register_capture(kernel), "vision_config": "sdpa"}
    model = AutoModelForImageTextToText.from_pretrained(folder, attn_implementation=attn, dtype=torch.bfloat16)
    model = model.to("cuda").eval()
    inputs = _inputs(AutoProcessor.from_pretrained(folder), "qwen2_vl", QUESTIONS[-batch:])
    inputs = {k: v.to("cuda") for k, v in inputs.items()}
    inputs["pixel_values"] = inputs["pixel_values"].to(torch.bfloat16)
    layers = list(range(model.config.text_config.num_hidden_layers))
    sequences, sink = generate_captured(model, inputs, layers, (0,), max_new_tokens=6)
    reference = eager_attentions(model, with_answer(inputs, sequences))
    prompt_len = inputs["input_ids"].shape[1]
    # eager computes scores in bf16 (~2^-8 relative); attnviz's rows are fp32 from the same q and k
    assert max_row_error(sink, reference, layers, prompt_len) <= 2e-2
    assert torch.equal(sequences, plain_generate(model, inputs, inner=kernel, max_new_tokens=6))
