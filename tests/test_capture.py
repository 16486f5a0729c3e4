"""Captured rows equal transformers' eager output_attentions rows; capture never changes the tokens."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnviz.capture import RowRecorder, recording
from attnviz.capture.generate import generate_with_capture
from attnviz.config import REASON_RFT_PROMPT, GenerationConfig
from attnviz.data import load_sample
from attnviz.models.loading import load_model
from tests.conftest import DEMO_DATA

GEN = GenerationConfig(max_new_tokens=24)


def _inputs(loaded, sample_idx: int):
    sample, images = load_sample(DEMO_DATA / "demo.json", DEMO_DATA, sample_idx)
    prompt = loaded.adapter.build_prompt(REASON_RFT_PROMPT.format(Question=sample.problem), len(images))
    return loaded.adapter.prepare_inputs(prompt, images)


def _eager_rows(model, inputs, full_ids: torch.Tensor, layers: list[int]) -> dict[int, torch.Tensor]:
    """Head-averaged eager attention (S, S) per layer for the whole generated sequence, one forward pass."""
    extra = full_ids.shape[1] - inputs["input_ids"].shape[1]
    pad = torch.zeros(1, extra, dtype=inputs["mm_token_type_ids"].dtype)
    forward = dict(inputs, input_ids=full_ids, attention_mask=torch.ones_like(full_ids))
    forward["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], pad], dim=1)
    model.set_attn_implementation({"text_config": "eager", "vision_config": "sdpa"})
    try:
        with torch.no_grad():
            out = model(**forward, output_attentions=True)
    finally:
        model.set_attn_implementation({"text_config": "attnviz_sdpa", "vision_config": "sdpa"})
    return {layer: out.attentions[layer][0].mean(dim=0) for layer in layers}


@pytest.mark.parametrize("fixture", ["demo_model_dir", "tiny_qwen2vl_dir"])
@pytest.mark.parametrize("sample_idx", [0, 1])
def test_rows_equal_eager_reference(request, fixture, sample_idx):
    loaded = load_model(str(request.getfixturevalue(fixture)), device="cpu", dtype="float32")
    inputs = _inputs(loaded, sample_idx)
    layers = list(range(loaded.num_layers))
    generated, recorder = generate_with_capture(loaded.model, inputs, layers, GEN)
    prompt_len = inputs["input_ids"].shape[1]
    full = torch.cat([inputs["input_ids"], torch.tensor([generated])], dim=1)
    reference = _eager_rows(loaded.model, inputs, full, layers)
    assert len(generated) >= 2
    for layer in layers:
        for step in range(len(generated)):
            query = prompt_len - 1 + step  # the position whose output chose generated token `step`
            expected = reference[layer][query, : query + 1].numpy()
            got = recorder.steps[layer][step]
            assert got.shape == expected.shape
            np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)


def test_capture_leaves_generated_tokens_unchanged(demo_model_dir):
    loaded = load_model(str(demo_model_dir), device="cpu", dtype="float32")
    inputs = _inputs(loaded, 0)
    captured, _ = generate_with_capture(loaded.model, inputs, [0, 1, 2, 3], GEN)
    loaded.model.set_attn_implementation({"text_config": "sdpa", "vision_config": "sdpa"})
    with torch.no_grad():
        plain = loaded.model.generate(**inputs, max_new_tokens=GEN.max_new_tokens, do_sample=False)
    assert plain[0, inputs["input_ids"].shape[1] :].tolist() == captured


def test_vision_tower_is_never_captured(demo_model_dir):
    loaded = load_model(str(demo_model_dir), device="cpu", dtype="float32")
    inputs = _inputs(loaded, 0)
    recorder = RowRecorder(range(loaded.num_layers))
    with torch.no_grad(), recording(recorder):
        loaded.model(**inputs)
    # one forward = one row per text layer; vision blocks (also numbered from 0) would have added more
    assert [len(recorder.steps[layer]) for layer in recorder.layers] == [1] * loaded.num_layers
    assert loaded.model.config.vision_config._attn_implementation == "sdpa"
