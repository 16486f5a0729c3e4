"""Every family's tiny twin: rows equal eager output_attentions rows (1e-6, fp32) at every step and layer, alone and
in a left-padded batch of two; tokens equal plain SDPA generation; only the language model is captured."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoConfig, AutoModelForCausalLM, AutoProcessor

from attnviz.capture import RowRecorder, recording, register_capture
from attnviz.models.base import text_kwargs
from attnviz.models.loading import load_model
from tests.capture_reference import eager_attentions, generate_captured, max_row_error, plain_generate, with_answer

FAMILIES = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl", "llava", "text", "gemma3", "internvl", "idefics3", "smolvlm",
            "mistral3", "glm4v"]
QUESTIONS = ["Where?", "Where is the red marker on this map? Answer with (x,y) and explain."]
NEW_TOKENS = 5


def _load(folder, family: str, config=None):
    """attnviz's own loader (capture selected for the language model only); a custom config for the text twin."""
    if config is None:
        loaded = load_model(str(folder), device="cpu", dtype="float32")
        return loaded.model, loaded.processor
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation=register_capture("sdpa"), config=config)
    return model.eval(), AutoProcessor.from_pretrained(folder)


def _image(seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 255, (60, 84, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _inputs(processor, family: str, questions: list[str], n_images: int = 1) -> dict:
    if family == "text":
        prompts = [processor.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                                 tokenize=False) for q in questions]
        processor.padding_side = "left"
        return dict(processor(prompts, padding=True, return_tensors="pt"))
    content = [{"type": "image"}] * n_images
    messages = [[{"role": "user", "content": [*content, {"type": "text", "text": q}]}] for q in questions]
    prompts = [processor.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in messages]
    processor.tokenizer.padding_side = "left"
    images = [[_image(len(questions) * k + i) for k in range(n_images)] for i in range(len(questions))]
    # templates that write the BOS themselves (Gemma 3, Idefics3, Mistral 3): the tokenizer adds no second
    return dict(processor(text=prompts, images=images, padding=True, return_tensors="pt",
                          **text_kwargs(processor.tokenizer, prompts[0])))


def _check_rows_and_tokens(model, inputs, head_layers=(0,), **generate_kwargs):
    layers = list(range(_num_layers(model)))
    sequences, sink = generate_captured(model, inputs, layers, head_layers, max_new_tokens=NEW_TOKENS,
                                        **generate_kwargs)
    prompt_len = inputs["input_ids"].shape[1]
    reference = eager_attentions(model, with_answer(inputs, sequences))
    assert all(len(sink.rows[layer]) == sequences.shape[1] - prompt_len for layer in layers)
    assert max_row_error(sink, reference, layers, prompt_len) <= 1e-6
    assert max_row_error(sink, reference, list(head_layers), prompt_len, heads=True) <= 1e-6
    plain = plain_generate(model, inputs, max_new_tokens=NEW_TOKENS, **generate_kwargs)
    assert torch.equal(sequences, plain)
    return sink


def _num_layers(model) -> int:
    return getattr(model.config, "text_config", model.config).num_hidden_layers


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("batch,n_images", [(1, 1), (2, 1), (1, 2)])
def test_rows_equal_eager_and_tokens_equal_sdpa(twin_dir, family, batch, n_images):
    if family == "text" and n_images > 1:
        pytest.skip("the text model takes no image")
    model, processor = _load(twin_dir(family), family)
    inputs = _inputs(processor, family, QUESTIONS[-batch:], n_images)
    if batch == 2:
        assert not inputs["attention_mask"][0, 0]  # the short prompt is left-padded
    torch.manual_seed(0)
    _check_rows_and_tokens(model, inputs)


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "text"])
def test_vision_tower_is_never_captured(twin_dir, family):
    model, processor = _load(twin_dir(family), family)
    inputs = _inputs(processor, family, QUESTIONS[:1])
    recorder = RowRecorder(range(_num_layers(model)))
    with torch.no_grad(), recording(recorder):
        model(**inputs)
    # one forward = one row per text layer; vision blocks (also numbered from 0) would have added rows
    assert [len(recorder.sink.rows[layer]) for layer in recorder.layers] == [1] * _num_layers(model)
    assert model.config.vision_config._attn_implementation == "sdpa"


@pytest.mark.parametrize("cache", ["dynamic", "static"])
def test_sliding_window_layers_place_a_cropped_cache_at_absolute_positions(twin_dir, cache):
    folder = twin_dir("text")
    config = AutoConfig.from_pretrained(folder)
    config.use_sliding_window, config.sliding_window = True, 6
    config.max_window_layers = 0  # transformers: layers from this index on use the window
    config.layer_types = ["full_attention", "sliding_attention"]
    torch.manual_seed(0)
    model, processor = _load(folder, "text", config)
    assert model.config.layer_types[1] == "sliding_attention"
    inputs = _inputs(processor, "text", QUESTIONS)
    assert inputs["input_ids"].shape[1] > 2 * config.sliding_window
    generate_kwargs = {"cache_implementation": "static"} if cache == "static" else {}
    sink = _check_rows_and_tokens(model, inputs, head_layers=(1,), **generate_kwargs)
    window_row = sink.rows[1][-1][1]  # the long prompt's last row in the sliding layer
    assert np.count_nonzero(window_row) == config.sliding_window
