"""Captured rows equal transformers' eager output_attentions rows on Qwen2-VL; capture never changes the tokens."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnviz.capture import RowRecorder, recording
from attnviz.capture.generate import generate_with_capture
from attnviz.capture.recorder import MemorySink
from attnviz.config import REASON_RFT_PROMPT, GenerationConfig
from attnviz.data import load_sample
from attnviz.models.loading import load_model
from tests.capture_reference import (
    eager_attentions,
    generate_captured,
    max_row_error,
    plain_generate,
    with_answer,
)
from tests.conftest import DEMO_DATA

GEN = GenerationConfig(max_new_tokens=12)


def _inputs(loaded, sample_idx: int = 0, question: str | None = None):
    sample, images = load_sample(DEMO_DATA / "demo.json", DEMO_DATA, sample_idx)
    prompt = loaded.adapter.build_prompt(REASON_RFT_PROMPT.format(Question=question or sample.problem), len(images))
    return loaded.adapter.prepare_inputs(prompt, images)


@pytest.fixture(scope="module")
def tiny(tiny_qwen2vl_dir):
    return load_model(str(tiny_qwen2vl_dir), device="cpu", dtype="float32")


@pytest.mark.parametrize("fixture", ["demo_model_dir", "tiny_qwen2vl_dir"])
def test_rows_and_head_rows_equal_eager_reference(request, fixture):
    loaded = load_model(str(request.getfixturevalue(fixture)), device="cpu", dtype="float32")
    inputs = _inputs(loaded, 1)
    layers = list(range(loaded.num_layers))
    sink = MemorySink()
    generated = generate_with_capture(loaded.model, inputs, RowRecorder(layers, sink, head_layers=[0, 2]), GEN)
    prompt_len = inputs["input_ids"].shape[1]
    full = torch.cat([inputs["input_ids"], torch.tensor([generated])], dim=1)
    reference = eager_attentions(loaded.model, with_answer(inputs, full))
    assert len(generated) >= 2 and all(len(sink.rows[layer]) == len(generated) for layer in layers)
    assert max_row_error(sink, reference, layers, prompt_len) <= 1e-6
    assert max_row_error(sink, reference, [0, 2], prompt_len, heads=True) <= 1e-6
    assert set(sink.heads) == {0, 2}


def test_capture_leaves_generated_tokens_unchanged(demo_model_dir):
    loaded = load_model(str(demo_model_dir), device="cpu", dtype="float32")
    inputs = _inputs(loaded, 0)
    captured = generate_with_capture(loaded.model, inputs, RowRecorder([0, 1, 2, 3]), GEN)
    plain = plain_generate(loaded.model, inputs, max_new_tokens=GEN.max_new_tokens)
    assert plain[0, inputs["input_ids"].shape[1] :].tolist() == captured


def test_vision_tower_is_never_captured(demo_model_dir):
    loaded = load_model(str(demo_model_dir), device="cpu", dtype="float32")
    inputs = _inputs(loaded, 0)
    recorder = RowRecorder(range(loaded.num_layers))
    with torch.no_grad(), recording(recorder):
        loaded.model(**inputs)
    # one forward = one row per text layer; vision blocks (also numbered from 0) would have added more
    assert [len(recorder.sink.rows[layer]) for layer in recorder.layers] == [1] * loaded.num_layers
    assert loaded.model.config.vision_config._attn_implementation == "sdpa"


def test_left_padded_batch_of_two(tiny):
    tokenizer = tiny.processor.tokenizer
    tokenizer.padding_side = "left"
    sample, images = load_sample(DEMO_DATA / "demo.json", DEMO_DATA, 0)
    questions = ["Where?", "Where is the red marker on this map? Answer with (x,y) please."]
    prompts = [tiny.adapter.build_prompt(q, 1) for q in questions]
    inputs = dict(tiny.processor(text=prompts, images=[images[0], images[0]], padding=True, return_tensors="pt"))
    assert not inputs["attention_mask"][0, 0]  # the short prompt really is left-padded
    layers = list(range(tiny.num_layers))
    sequences, sink = generate_captured(tiny.model, inputs, layers, head_layers=[1], max_new_tokens=6)
    reference = eager_attentions(tiny.model, with_answer(inputs, sequences))
    prompt_len = inputs["input_ids"].shape[1]
    assert sink.rows[0][0].shape[0] == 2
    assert max_row_error(sink, reference, layers, prompt_len) <= 1e-6
    assert max_row_error(sink, reference, [1], prompt_len, heads=True) <= 1e-6
    pad_keys = ~inputs["attention_mask"][0].bool()
    assert np.all(sink.rows[0][3][0, : prompt_len][pad_keys.numpy()] == 0)  # padding never attended
    assert torch.equal(sequences, plain_generate(tiny.model, inputs, max_new_tokens=6))


def test_static_cache_rows_cover_only_filled_slots(tiny):
    inputs = _inputs(tiny, 0)
    layers = list(range(tiny.num_layers))
    sequences, sink = generate_captured(tiny.model, inputs, layers, max_new_tokens=6, cache_implementation="static")
    prompt_len = inputs["input_ids"].shape[1]
    reference = eager_attentions(tiny.model, with_answer(inputs, sequences))
    assert [r.shape[-1] for r in sink.rows[0]] == [prompt_len + t for t in range(sequences.shape[1] - prompt_len)]
    assert max_row_error(sink, reference, layers, prompt_len) <= 1e-6
    assert torch.equal(sequences, plain_generate(tiny.model, inputs, max_new_tokens=6))


@pytest.mark.parametrize("dtype,tol", [("bfloat16", 2e-2), ("float16", 3e-3)])
def test_half_precision_rows_are_fp32_and_match_eager(tiny_qwen2vl_dir, dtype, tol):
    """Eager scores in half precision carry ~1 ulp of error (bf16: 2^-8, fp16: 2^-11) into the probabilities."""
    loaded = load_model(str(tiny_qwen2vl_dir), device="cpu", dtype=dtype)
    inputs = _inputs(loaded, 0)
    inputs["pixel_values"] = inputs["pixel_values"].to(loaded.dtype)
    layers = list(range(loaded.num_layers))
    sequences, sink = generate_captured(loaded.model, inputs, layers, max_new_tokens=5)
    prompt_len = inputs["input_ids"].shape[1]
    rows = [row for layer in layers for row in sink.rows[layer]]
    assert all(row.dtype == np.float32 for row in rows)
    # fp32 softmax sums to 1 to fp32 rounding; rows computed in half precision would be off by ~1e-3
    assert max(abs(float(row.astype(np.float64).sum()) - 1.0) for row in rows) < 1e-5
    reference = eager_attentions(loaded.model, with_answer(inputs, sequences))
    assert max_row_error(sink, reference, layers, prompt_len) <= tol
    assert torch.equal(sequences, plain_generate(loaded.model, inputs, max_new_tokens=5))
