"""Replay on the later families: one teacher-forced pass over the generated answer gives the rows generation gave
(Gemma 3's bidirectional image mask and sliding window, InternVL's and Idefics3's tiles, Mistral 3's breaks, GLM's
multimodal rope alike), with one and two images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from attnviz.capture import RowRecorder
from attnviz.capture.generate import generate_with_capture
from attnviz.capture.recorder import MemorySink
from attnviz.capture.replay import replay_with_capture
from attnviz.config import GenerationConfig
from attnviz.models.loading import load_model
from tests.test_family_twins import LATER_BUILDERS


@pytest.mark.parametrize("n_images", [1, 2])
@pytest.mark.parametrize("family", list(LATER_BUILDERS))
def test_replayed_rows_equal_generated_rows(twin_dir, family, n_images):
    loaded = load_model(str(twin_dir(family)), device="cpu", dtype="float32")
    images = [Image.new("RGB", size, (200, 40 * k, 90)) for k, size in enumerate([(100, 70), (60, 90)][:n_images])]
    prompt = loaded.adapter.build_prompt("Where is the red marker?", n_images)
    inputs = loaded.adapter.prepare_inputs(prompt, images)
    layers = list(range(loaded.num_layers))
    generated, replayed = MemorySink(), MemorySink()
    ids = generate_with_capture(loaded.model, inputs, RowRecorder(layers, generated), GenerationConfig(6))
    prompt_len = inputs["input_ids"].shape[1]
    replay_with_capture(loaded.model, inputs, ids, RowRecorder(layers, replayed, answer=(prompt_len, len(ids))))
    for layer in layers:
        assert len(replayed.rows[layer]) == len(ids)
        for step, row in enumerate(generated.rows[layer]):
            np.testing.assert_allclose(replayed.rows[layer][step], row, atol=1e-6, err_msg=f"{layer} {step}")
