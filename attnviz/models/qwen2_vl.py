"""Qwen2-VL (and the checkpoints fine-tuned from it, e.g. Reason-RFT), Qwen2.5-VL, Qwen3-VL and GLM-4.1V.

Each image is resized to multiples of patch·merge (14·2 = 28 px); ``image_grid_thw[i] = (t, h, w)`` in patches;
image i contributes ``t·h·w / merge²`` placeholder tokens, one contiguous run, raster order over the merged
``(h / merge, w / merge)`` grid, images in prompt order. Qwen2.5-VL is laid out the same way; Qwen3-VL too, with
16-px patches (32-px cells); GLM-4.1V too (its vision tower merges each 2x2 block of patches with a strided
convolution instead of an MLP, over the same patch order).
"""

from __future__ import annotations

from typing import Any

import torch

from attnviz.chat import CHATML, GLM
from attnviz.errors import AttnvizError
from attnviz.models.base import ModelAdapter
from attnviz.trace import ImageGeometry


def placeholder_runs(input_ids: torch.Tensor, token_id: int) -> list[tuple[int, int]]:
    """(S,) ids -> [(start, length)] of each contiguous run of ``token_id``, in order."""
    is_tok = (input_ids == token_id).to(torch.int8)
    edges = torch.diff(is_tok, prepend=torch.zeros(1, dtype=torch.int8), append=torch.zeros(1, dtype=torch.int8))
    starts = torch.nonzero(edges == 1).flatten().tolist()
    ends = torch.nonzero(edges == -1).flatten().tolist()
    return [(s, e - s) for s, e in zip(starts, ends, strict=True)]


class Qwen2VLAdapter(ModelAdapter):
    family = "Qwen2-VL"
    model_types = ("qwen2_vl",)
    chat_formats = (CHATML,)  # Qwen2-VL, Qwen2.5-VL and Qwen3-VL alike

    def _patch_and_merge(self) -> tuple[int, int]:
        image_processor = self.processor.image_processor
        return int(image_processor.patch_size), int(image_processor.merge_size)

    def image_geometry(self, inputs: dict[str, Any], image_sizes: list[tuple[int, int]]) -> list[ImageGeometry]:
        # the whole image is resized, never cropped: the grid covers all of it and the sizes are not needed
        grids = inputs.get("image_grid_thw")
        if grids is None:
            return []
        patch, merge = self._patch_and_merge()
        runs = placeholder_runs(inputs["input_ids"][0], self.image_token_id())
        if len(runs) != len(grids):
            raise AttnvizError(
                f"found {len(runs)} image-token runs in the prompt but {len(grids)} images were processed; "
                "the chat template must place each image once"
            )
        geometries = []
        for index, ((start, length), (t, h, w)) in enumerate(zip(runs, grids.tolist(), strict=True)):
            grid_h, grid_w = h // merge, w // merge
            if t * grid_h * grid_w != length:
                raise AttnvizError(f"image {index}: {length} tokens do not tile a {t}x{grid_h}x{grid_w} grid")
            geometries.append(
                ImageGeometry(index, start, grid_h * t, grid_w, pixel_h=h * patch, pixel_w=w * patch)
            )
        return geometries


class Qwen25VLAdapter(Qwen2VLAdapter):
    """Qwen2.5-VL: the same placeholder layout (its vision tower restores raster order after window attention)."""

    family = "Qwen2.5-VL"
    model_types = ("qwen2_5_vl",)


class Qwen3VLAdapter(Qwen2VLAdapter):
    """Qwen3-VL: the same layout with 16-px patches (a merged cell is 32 px)."""

    family = "Qwen3-VL"
    model_types = ("qwen3_vl",)


class Glm4vAdapter(Qwen2VLAdapter):
    """GLM-4.1V-Thinking: Qwen2-VL's grids (14-px patches, 2x2 merged: 28-px cells), between ``<|begin_of_image|>``
    and ``<|end_of_image|>``; its own turns (``<|user|>`` / ``<|assistant|>``)."""

    family = "GLM-4.1V"
    model_types = ("glm4v",)
    chat_formats = (GLM,)
