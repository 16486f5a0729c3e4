"""Idefics3 / SmolVLM specifics: the stitched tile grid against the model's own pixel shuffle, tiles placed by their
<row_r_col_c> markers, the global image without a cell, and an unsplit image as one grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText

from attnviz.errors import AttnvizError
from tests.test_geometry_families import _spot_image
from tests.twin_tools import adapter_geometry, twin_adapter


@pytest.fixture(scope="module", params=["idefics3", "smolvlm"])
def family(request, twin_dir):
    folder = twin_dir(request.param)
    return twin_adapter(folder), AutoModelForImageTextToText.from_pretrained(folder, local_files_only=True).eval()


def _geometry(adapter, images):
    return adapter_geometry(adapter, images)


def _model_token_brightness(model, pixels: torch.Tensor, n_blocks: int) -> torch.Tensor:
    """(blocks, C, T, T) -> (blocks · side²,): each patch's mean brightness as a 1-d feature, pixel-shuffled by the
    model's own connector, one value per image token in the model's order."""
    vision = model.config.vision_config
    patch, per_side = vision.patch_size, vision.image_size // vision.patch_size
    means = pixels[:n_blocks].float().mean(dim=1).reshape(n_blocks, per_side, patch, per_side, patch).mean(dim=(2, 4))
    shuffled = model.model.connector.pixel_shuffle(means.reshape(n_blocks, -1, 1), model.config.scale_factor)
    return shuffled.mean(dim=-1).reshape(-1)


def _spot_cell(adapter, model, size, where, images_before=()):
    _, blank = _geometry(adapter, [*images_before, Image.new("RGB", size)])
    g = blank[-1]
    cell = (int(where[0] * g.grid_h), int(where[1] * g.grid_w))
    cell_w, cell_h = size[0] / g.grid_w, size[1] / g.grid_h  # the grid stretches over the whole image
    centre = ((cell[1] + 0.5) * cell_w, (cell[0] + 0.5) * cell_h)
    inputs, geometry = _geometry(adapter, [*images_before, _spot_image(size, centre, 0.4 * min(cell_w, cell_h))])
    ids = inputs["input_ids"][0]
    positions = torch.nonzero(ids == adapter.image_token_id()).flatten().numpy()
    row = np.zeros(len(ids), dtype=np.float32)
    row[positions] = _model_token_brightness(model, inputs["pixel_values"][0], len(positions) // 16).numpy()
    cells = geometry[-1].cell_weights(row)
    return np.unravel_index(cells.argmax(), cells.shape), cell


@pytest.mark.parametrize("size,where", [((100, 70), (0.1, 0.9)), ((100, 70), (0.7, 0.4)), ((60, 90), (0.9, 0.2))])
def test_a_spot_lights_its_cell_of_the_stitched_grid_through_the_models_pixel_shuffle(family, size, where):
    adapter, model = family
    lit, cell = _spot_cell(adapter, model, size, where, images_before=[Image.new("RGB", (50, 50))])
    assert lit == cell


def test_an_unsplit_image_is_its_global_grid(family, monkeypatch):
    adapter, model = family
    monkeypatch.setattr(adapter.processor.image_processor, "do_image_splitting", False)
    _, (g,) = _geometry(adapter, [Image.new("RGB", (100, 70))])
    assert (g.grid_h, g.grid_w, g.pixel_h, g.pixel_w, g.cell_positions) == (4, 4, 32, 32, None)
    assert _spot_cell(adapter, model, (100, 70), (0.6, 0.1))[0] == (2, 0)


def test_tiles_follow_their_markers_and_the_global_image_has_no_cell(family):
    adapter, _ = family
    inputs, (tall,) = _geometry(adapter, [Image.new("RGB", (60, 90))])  # 96 px tall: 3 rows of 2 tiles
    assert (tall.grid_h, tall.grid_w, tall.pixel_h, tall.pixel_w) == (12, 8, 96, 64)
    ids = inputs["input_ids"][0].tolist()
    texts = adapter.tokenizer.convert_ids_to_tokens(ids)
    for tile, (r, c) in enumerate((r, c) for r in range(3) for c in range(2)):
        first = tall.cell_positions[(4 * r) * tall.grid_w + 4 * c]  # the tile's top-left cell
        assert texts[first - 1] == f"<row_{r + 1}_col_{c + 1}>", tile
    global_run = [i for i in range(texts.index("<global-img>") + 1, len(ids)) if texts[i] == "<image>"][:16]
    assert len(global_run) == 16 and not set(global_run) & set(tall.positions)
    row = np.zeros(len(ids), dtype=np.float32)
    row[global_run[3]] = 1.0  # one-hot on a global-image token: no cell lights
    assert not tall.cell_weights(row).any()


def test_tiles_without_their_global_image_are_refused(family):
    adapter, _ = family
    inputs, _ = _geometry(adapter, [Image.new("RGB", (60, 90))])
    ids = inputs["input_ids"][0].tolist()
    cut = ids.index(adapter.tokenizer.convert_tokens_to_ids("<global-img>"))
    truncated = dict(inputs, input_ids=torch.tensor([ids[:cut]]))
    with pytest.raises(AttnvizError, match="no global image"):
        adapter.image_geometry(truncated, [(60, 90)])


def test_smolvlm_without_num2words_is_one_line(twin_dir, monkeypatch):
    """SmolVLM's processor imports num2words when it is built: a missing package is named, in one line."""
    from transformers.models.smolvlm import processing_smolvlm

    from attnviz.models.loading import load_processor

    folder = twin_dir("smolvlm")
    monkeypatch.setattr(processing_smolvlm, "num2words", None)
    with pytest.raises(AttnvizError, match="num2words") as err:
        load_processor(folder, str(folder), False, None)
    assert "\n" not in str(err.value)
