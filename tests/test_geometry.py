"""Image-token geometry: token k of image i is cell (k // w, k % w) of image i, checked against known answers."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from attnviz.models import adapter_for
from attnviz.models.qwen2_vl import placeholder_runs
from attnviz.trace import ImageGeometry


@pytest.fixture(scope="module")
def adapter(tiny_qwen2vl_dir):
    from transformers import AutoConfig, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_qwen2vl_dir, local_files_only=True)
    return adapter_for(processor, AutoConfig.from_pretrained(tiny_qwen2vl_dir, local_files_only=True))


def _bright_cell_image(size: tuple[int, int], cell: tuple[int, int], cell_px: float) -> Image.Image:
    """Black image (W, H) with one white merged cell at (row, col), in the coordinates of the resized image."""
    width, height = size
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    row, col = cell
    pixels[int(row * cell_px) : int((row + 1) * cell_px), int(col * cell_px) : int((col + 1) * cell_px)] = 255
    return Image.fromarray(pixels)


def _inputs(adapter, images):
    return adapter.prepare_inputs(adapter.build_prompt("Where?", len(images)), images)


def test_two_images_of_different_grids(adapter):
    images = [Image.new("RGB", (224, 224)), Image.new("RGB", (308, 252))]
    inputs = _inputs(adapter, images)
    geometry = adapter.image_geometry(inputs, [image.size for image in images])
    assert [(g.grid_h, g.grid_w) for g in geometry] == [(8, 8), (9, 11)]
    assert [(g.pixel_h, g.pixel_w) for g in geometry] == [(224, 224), (252, 308)]
    ids = inputs["input_ids"][0]
    for g in geometry:
        assert all(int(ids[p]) == adapter.image_token_id() for p in g.positions)
    assert geometry[1].token_start > geometry[0].token_start + geometry[0].n_tokens  # vision_end/start between


@pytest.mark.parametrize("image_index,k", [(0, 0), (0, 37), (1, 0), (1, 50), (1, 98)])
def test_one_hot_row_lights_cell_k_of_the_right_image(adapter, image_index, k):
    images = [Image.new("RGB", (224, 224)), Image.new("RGB", (308, 252))]
    geometry = adapter.image_geometry(_inputs(adapter, images), [image.size for image in images])
    seq_len = geometry[-1].token_start + geometry[-1].n_tokens + 5
    row = np.zeros(seq_len, dtype=np.float32)
    row[geometry[image_index].token_start + k] = 1.0
    for g in geometry:
        cells = g.cell_weights(row)
        lit = np.argwhere(cells == 1.0).tolist()
        assert lit == ([[k // g.grid_w, k % g.grid_w]] if g.index == image_index else [])


@pytest.mark.parametrize("cell", [(0, 0), (2, 7), (8, 10), (5, 3)])
def test_token_k_covers_the_pixels_of_cell_k(adapter, cell):
    """Known answer from pixels: a white cell at (row, col) lands in merged token row * w + col."""
    image = _bright_cell_image((308, 252), cell, 28)
    inputs = _inputs(adapter, [image])
    (g,) = adapter.image_geometry(inputs, [image.size])
    merge = adapter.processor.image_processor.merge_size
    # pixel_values: (n_patches, C·T·P·P), merge² consecutive patches per merged token, tokens in raster order
    patch_means = inputs["pixel_values"].float().mean(dim=1).reshape(g.n_tokens, merge * merge).mean(dim=1)
    assert int(patch_means.argmax()) == cell[0] * g.grid_w + cell[1]


def test_placeholder_runs():
    import torch

    ids = torch.tensor([1, 9, 9, 2, 9, 3, 9, 9, 9])
    assert placeholder_runs(ids, 9) == [(1, 2), (4, 1), (6, 3)]


def test_geometry_positions_and_reshape():
    g = ImageGeometry(index=0, token_start=3, grid_h=2, grid_w=3, pixel_h=56, pixel_w=84)
    row = np.arange(12, dtype=np.float32)
    assert list(g.positions) == [3, 4, 5, 6, 7, 8]
    np.testing.assert_array_equal(g.cell_weights(row), [[3, 4, 5], [6, 7, 8]])


def test_explicit_cell_positions_skip_tokens_between_cells_and_cells_without_a_token():
    # a 2x3 grid whose rows are followed by a newline token (positions 13 and 17) and whose last cell has no token
    g = ImageGeometry(0, 10, 2, 3, 56, 84, cell_positions=(10, 11, 12, 14, 15, -1))
    row = np.arange(20, dtype=np.float32)
    np.testing.assert_array_equal(g.cell_weights(row), [[10, 11, 12], [14, 15, 0]])
    assert list(g.positions) == [10, 11, 12, 14, 15] and g.n_tokens == 5
    with pytest.raises(ValueError, match="2x3"):
        ImageGeometry(0, 10, 2, 3, 56, 84, cell_positions=(10, 11))


def test_geometry_survives_json_and_crops_its_view():
    import json
    from dataclasses import asdict

    g = ImageGeometry(1, 4, 1, 2, 28, 56, cell_positions=(4, 6), view_box=(10, 0, 70, 30))
    again = ImageGeometry(**json.loads(json.dumps(asdict(g))))
    assert again == g and hash(again) == hash(g)
    assert g.view(Image.new("RGB", (80, 30))).size == (60, 30)
    plain = ImageGeometry(0, 0, 1, 1, 28, 28)
    image = Image.new("RGB", (80, 30))
    assert plain.view(image) is image
