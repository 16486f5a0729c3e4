"""InternVL 3 specifics: the stitched tile grid against the model's own pixel shuffle, the thumbnail without a
cell, one-tile images without a thumbnail, and the tile grid against the image processor's tile count."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText

from tests.test_geometry_families import _spot_image
from tests.twin_tools import adapter_geometry, twin_adapter

SIZES = [(100, 70), (70, 100), (20, 20), (60, 60), (300, 40), (40, 300), (33, 90), (1000, 990)]


@pytest.fixture(scope="module")
def internvl(twin_dir):
    folder = twin_dir("internvl")
    return twin_adapter(folder), AutoModelForImageTextToText.from_pretrained(folder, local_files_only=True).eval()


def _geometry(adapter, images):
    return adapter_geometry(adapter, images)


def _model_token_brightness(model, pixels: torch.Tensor) -> torch.Tensor:
    """(tiles, C, T, T) pixels -> (tiles · side²,) brightness of every image token in the model's own order: each
    patch's mean brightness as a 1-d feature, pixel-shuffled by ``InternVLModel.pixel_shuffle`` as
    ``get_image_features`` does it."""
    vision = model.config.vision_config
    patch, per_side = vision.patch_size[0], vision.image_size[0] // vision.patch_size[0]
    tiles = pixels.shape[0]
    means = pixels.float().mean(dim=1).reshape(tiles, per_side, patch, per_side, patch).mean(dim=(2, 4))
    shuffled = model.model.pixel_shuffle(means[..., None], scale_factor=model.config.downsample_ratio)
    return shuffled.mean(dim=-1).reshape(-1)  # the 4 merged patches' mean: one value per token


@pytest.mark.parametrize("size,where", [((100, 70), (0.1, 0.9)), ((100, 70), (0.6, 0.3)), ((40, 300), (0.8, 0.5)),
                                        ((20, 20), (0.7, 0.2))])
def test_a_spot_lights_its_cell_of_the_stitched_grid_through_the_models_pixel_shuffle(internvl, size, where):
    adapter, model = internvl
    _, (blank,) = _geometry(adapter, [Image.new("RGB", size)])
    cell = (int(where[0] * blank.grid_h), int(where[1] * blank.grid_w))
    cell_w, cell_h = size[0] / blank.grid_w, size[1] / blank.grid_h  # the grid stretches over the whole image
    centre = ((cell[1] + 0.5) * cell_w, (cell[0] + 0.5) * cell_h)
    inputs, (g,) = _geometry(adapter, [_spot_image(size, centre, 0.4 * min(cell_w, cell_h))])
    ids = inputs["input_ids"][0]
    image_positions = torch.nonzero(ids == adapter.image_token_id()).flatten()
    row = np.zeros(len(ids), dtype=np.float32)
    row[image_positions.numpy()] = _model_token_brightness(model, inputs["pixel_values"]).numpy()
    cells = g.cell_weights(row)
    assert np.unravel_index(cells.argmax(), cells.shape) == cell, (size, where)


def test_the_thumbnail_has_no_cell_and_a_single_tile_no_thumbnail(internvl):
    adapter, _ = internvl
    inputs, (wide, small) = _geometry(adapter, [Image.new("RGB", (100, 70)), Image.new("RGB", (20, 20))])
    side = 4
    assert (wide.grid_h, wide.grid_w, wide.pixel_h, wide.pixel_w) == (2 * side, 3 * side, 64, 96)  # 3x2 tiles
    wide_tokens = (6 + 1) * side * side  # six tiles and the thumbnail
    thumbnail = range(wide.token_start + 6 * side * side, wide.token_start + wide_tokens)
    assert not set(thumbnail) & set(wide.positions) and len(wide.positions) == 6 * side * side
    ids = inputs["input_ids"][0]
    assert all(int(ids[p]) == adapter.image_token_id() for p in thumbnail)
    row = np.zeros(len(ids), dtype=np.float32)
    row[thumbnail[5]] = 1.0  # one-hot on a thumbnail token: no cell of either image lights
    assert not wide.cell_weights(row).any() and not small.cell_weights(row).any()
    assert (small.grid_h, small.grid_w, small.cell_positions) == (side, side, None)  # one tile: contiguous
    assert small.token_start > wide.token_start + wide_tokens


def test_the_tile_grid_matches_the_image_processors_tile_count(internvl):
    adapter, _ = internvl
    image_processor = adapter.processor.image_processor
    for width, height in SIZES:
        tiles = image_processor.get_number_of_image_patches(height, width, {"crop_to_patches": True})
        rows, cols = adapter.tile_grid(width, height, tiles)
        assert rows * cols + (tiles > 1) == tiles, (width, height)
        inputs, (g,) = _geometry(adapter, [Image.new("RGB", (width, height))])
        assert inputs["pixel_values"].shape[0] == tiles and g.grid_h * g.grid_w == rows * cols * 16
