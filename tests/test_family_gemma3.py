"""Gemma 3 specifics: the sliding window really crops the captured rows, the grid is the stretched square, a
template that writes <bos> gets no second one, and pan-and-scan is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from attnviz.errors import AttnvizError
from attnviz.models.loading import load_model
from tests.capture_reference import generate_captured
from tests.test_geometry_families import _spot_image


@pytest.fixture(scope="module")
def gemma(twin_dir):
    return load_model(str(twin_dir("gemma3")), device="cpu", dtype="float32")


def _inputs(loaded, n_images: int = 1, image: Image.Image | None = None):
    adapter = loaded.adapter
    images = [image or Image.new("RGB", (100, 70), (90, 120, 200)) for _ in range(n_images)]
    return adapter.prepare_inputs(adapter.build_prompt("Where is the red marker?", n_images), images), images


def test_the_sliding_layer_sees_its_window_and_the_global_layer_everything(gemma):
    inputs, _ = _inputs(gemma)
    window = gemma.model.config.text_config.sliding_window  # 8 in the twin: shorter than the prompt
    assert gemma.model.config.text_config.layer_types == ["sliding_attention", "full_attention"]
    _, sink = generate_captured(gemma.model, inputs, [0, 1], max_new_tokens=3)
    prompt_len = inputs["input_ids"].shape[1]
    assert prompt_len > 2 * window
    for step in range(3):
        assert np.count_nonzero(sink.rows[0][step][0]) == window  # the last `window` keys, the query's own included
        assert np.count_nonzero(sink.rows[1][step][0]) == prompt_len + step


def test_the_prompt_has_one_bos_although_the_tokenizer_adds_one(gemma):
    adapter = gemma.adapter
    assert adapter.tokenizer("x")["input_ids"][0] == adapter.tokenizer.bos_token_id  # it adds <bos>, as Gemma's does
    inputs, _ = _inputs(gemma)
    ids = inputs["input_ids"][0].tolist()
    assert ids[0] == adapter.tokenizer.bos_token_id and ids.count(adapter.tokenizer.bos_token_id) == 1


@pytest.mark.parametrize("cell", [(0, 0), (1, 2), (3, 1)])
def test_a_spot_lights_its_cell_of_the_stretched_square(gemma, cell):
    """Every image is resized to one square (aspect not kept): cell (r, c) covers (r/4.., c/4..) of the image."""
    size = (100, 70)
    centre = ((cell[1] + 0.5) * size[0] / 4, (cell[0] + 0.5) * size[1] / 4)
    inputs, images = _inputs(gemma, image=_spot_image(size, centre, 6))
    (g,) = gemma.adapter.image_geometry(inputs, [image.size for image in images])
    assert (g.grid_h, g.grid_w, g.pixel_h, g.pixel_w) == (4, 4, 64, 64) and g.view_box is None
    pixels = inputs["pixel_values"][0].float().mean(dim=0)  # (64, 64)
    brightness = pixels.reshape(4, 16, 4, 16).mean(dim=(1, 3)).numpy()  # SigLIP patches pooled 2x2: 16 px a cell
    assert np.unravel_index(brightness.argmax(), brightness.shape) == cell


def test_two_images_get_one_run_each(gemma):
    inputs, images = _inputs(gemma, n_images=2)
    first, second = gemma.adapter.image_geometry(inputs, [image.size for image in images])
    ids = inputs["input_ids"][0]
    assert second.token_start > first.token_start + 16
    for g in (first, second):
        assert bool((ids[list(g.positions)] == gemma.adapter.image_token_id()).all())
        assert int(ids[g.token_start - 1]) == gemma.model.config.boi_token_id  # right after <start_of_image>


def test_pan_and_scan_is_refused_in_one_line(gemma, monkeypatch):
    monkeypatch.setattr(gemma.adapter.processor.image_processor, "do_pan_and_scan", True)
    with pytest.raises(AttnvizError, match="pan-and-scan") as err:
        _inputs(gemma)
    assert "\n" not in str(err.value)


def test_more_image_tokens_than_one_run_per_image_is_refused(gemma):
    inputs, images = _inputs(gemma)
    doubled = dict(inputs, input_ids=torch.cat([inputs["input_ids"], inputs["input_ids"]], dim=1))
    with pytest.raises(AttnvizError, match="runs of"):
        gemma.adapter.image_geometry(doubled, [image.size for image in images])


def test_auto_attention_never_picks_flash_attention_for_gemma(monkeypatch):
    """FlashAttention cannot take Gemma 3's bidirectional image mask: auto falls back to sdpa, asking for it fails."""
    from attnviz.models import loading
    from attnviz.models.gemma3 import Gemma3Adapter

    monkeypatch.setattr(loading, "is_flash_attn_2_available", lambda: True)
    cuda = torch.device("cuda")
    assert loading.resolve_attn_implementation("auto", cuda, torch.bfloat16, Gemma3Adapter) == "sdpa"
    with pytest.raises(AttnvizError, match="Gemma 3 cannot use it"):
        loading.resolve_attn_implementation("flash_attention_2", cuda, torch.bfloat16, Gemma3Adapter)
