"""Mistral 3 specifics: cells against the model's own patch merger, [IMG_BREAK] / [IMG_END] without a cell, one
<s> although the tokenizer adds one, and the system turn the template always writes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoConfig, AutoProcessor
from transformers.models.mistral3.modeling_mistral3 import Mistral3PatchMerger

from attnviz import sinks
from attnviz.models import adapter_for
from attnviz.models.tokens import special_token_ids, token_kinds, token_texts
from tests.test_geometry_families import _spot_image


@pytest.fixture(scope="module")
def adapter(twin_dir):
    folder = twin_dir("mistral3")
    processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
    return adapter_for(processor, AutoConfig.from_pretrained(folder, local_files_only=True))


def _geometry(adapter, images):
    inputs = adapter.prepare_inputs(adapter.build_prompt("Where?", len(images)), images)
    return inputs, adapter.image_geometry(inputs, [image.size for image in images])


def _merged_brightness(adapter, inputs) -> torch.Tensor:
    """Every [IMG] token's brightness in the model's order: each Pixtral patch's mean brightness as a 1-d feature,
    folded 2x2 by ``Mistral3PatchMerger.forward`` itself (its learned linear layer left out)."""
    patch = adapter.config.vision_config.patch_size
    merger = SimpleNamespace(patch_size=patch, spatial_merge_size=adapter.config.spatial_merge_size,
                             merging_layer=torch.nn.Identity())
    features = []
    for pixels, (height, width) in zip(inputs["pixel_values"], inputs["image_sizes"].tolist(), strict=True):
        means = pixels[:, :height, :width].float().mean(dim=0)  # (H, W): the image, not the batch padding
        features.append(means.reshape(height // patch, patch, width // patch, patch).mean(dim=(1, 3)).reshape(-1, 1))
    merged = Mistral3PatchMerger.forward(merger, torch.cat(features), inputs["image_sizes"])  # (tokens, 4)
    return merged.mean(dim=-1)


@pytest.mark.parametrize("size,where", [((100, 70), (0.1, 0.9)), ((100, 70), (0.6, 0.3)), ((40, 90), (0.8, 0.4))])
def test_a_spot_lights_its_cell_through_the_models_patch_merger(adapter, size, where):
    before = Image.new("RGB", (50, 30))
    _, (_, blank) = _geometry(adapter, [before, Image.new("RGB", size)])
    cell = (int(where[0] * blank.grid_h), int(where[1] * blank.grid_w))
    cell_w, cell_h = size[0] / blank.grid_w, size[1] / blank.grid_h
    centre = ((cell[1] + 0.5) * cell_w, (cell[0] + 0.5) * cell_h)
    inputs, (_, g) = _geometry(adapter, [before, _spot_image(size, centre, 0.4 * min(cell_w, cell_h))])
    ids = inputs["input_ids"][0]
    row = np.zeros(len(ids), dtype=np.float32)
    row[torch.nonzero(ids == adapter.image_token_id()).flatten().numpy()] = _merged_brightness(adapter, inputs).numpy()
    cells = g.cell_weights(row)
    assert np.unravel_index(cells.argmax(), cells.shape) == cell


def test_breaks_and_ends_have_no_cell(adapter):
    inputs, (g,) = _geometry(adapter, [Image.new("RGB", (100, 70))])
    assert (g.grid_h, g.grid_w, g.pixel_h, g.pixel_w) == (6, 8, 48, 64)  # 64x45 -> 64x48 px, 8-px cells
    texts = adapter.tokenizer.convert_ids_to_tokens(inputs["input_ids"][0].tolist())
    block = range(g.token_start, g.token_start + 6 * 9)
    markers = [p for p in block if p not in set(g.positions)]
    assert [texts[p] for p in markers] == ["[IMG_BREAK]"] * 5 + ["[IMG_END]"]
    assert [p - g.token_start for p in markers] == [8, 17, 26, 35, 44, 53]


def test_one_bos_and_the_default_system_turn(adapter):
    inputs, _ = _geometry(adapter, [Image.new("RGB", (100, 70))])
    ids = inputs["input_ids"][0].tolist()
    bos = adapter.tokenizer.bos_token_id
    assert adapter.tokenizer("x")["input_ids"][0] == bos and ids.count(bos) == 1  # the tokenizer adds <s> itself
    texts = token_texts(adapter.tokenizer, ids)
    kinds = token_kinds(ids, adapter.image_token_id(), special_token_ids(adapter.tokenizer))
    chat = adapter.chat_format(adapter.build_prompt("Where?", 1))
    system = np.flatnonzero(sinks.sink_mask(texts, kinds, ["system"], chat=chat))
    assert "".join(texts[system[0] : system[-1] + 1]).startswith("[SYSTEM_PROMPT]You are Mistral Small 3")
    assert texts[system[-1]] == "[/SYSTEM_PROMPT]" and texts[system[-1] + 1] == "[INST]"
