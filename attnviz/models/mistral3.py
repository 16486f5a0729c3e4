"""Mistral 3 (``mistral3``: Mistral-Small-3.1): Pixtral patches merged 2x2, one row of ``[IMG]`` per cell row.

The image processor resizes the image (longest edge at most ``size``, 1540 px; aspect kept) to multiples of
patch·merge (14·2 = 28 px) and reports each resized ``(height, width)`` in ``image_sizes``; the patch merger
folds every 2x2 block of Pixtral patches into one token, raster order. Per image the prompt holds
``rows`` runs of ``cols`` ``[IMG]`` tokens, each row closed by ``[IMG_BREAK]`` and the last by ``[IMG_END]``
instead: the panel's cell (r, c) is ``[IMG]`` number ``r·(cols + 1) + c`` of the image, over the whole image.
"""

from __future__ import annotations

from typing import Any

import torch

from attnviz.chat import MISTRAL_INST, MISTRAL_V7
from attnviz.errors import AttnvizError
from attnviz.models.base import ModelAdapter
from attnviz.trace import ImageGeometry


def image_blocks(input_ids: torch.Tensor, image_id: int, end_id: int) -> list[tuple[int, int]]:
    """(S,) ids -> [(first, last)] positions of each image's block: from its first ``[IMG]`` to its ``[IMG_END]``."""
    ends = torch.nonzero(input_ids == end_id).flatten().tolist()
    is_image = (input_ids == image_id).tolist()
    blocks, start = [], 0
    for end in ends:
        first = next((i for i in range(start, end) if is_image[i]), None)
        if first is None:
            raise AttnvizError(f"an [IMG_END] at position {end} closes no image tokens")
        blocks.append((first, end))
        start = end + 1
    return blocks


class Mistral3Adapter(ModelAdapter):
    family = "Mistral 3"
    model_types = ("mistral3",)
    # Mistral-Small-3.1's template: [SYSTEM_PROMPT] ... [/SYSTEM_PROMPT][INST] ... [/INST]; fine-tunes with the older
    # [INST]-only turns are found by the second
    chat_formats = (MISTRAL_V7, MISTRAL_INST)

    def _merged_patch(self) -> int:
        """Pixels per side of one token's cell: Pixtral's patch times the merger's ``spatial_merge_size``."""
        return int(self.config.vision_config.patch_size) * int(self.config.spatial_merge_size)

    def image_geometry(self, inputs: dict[str, Any], image_sizes: list[tuple[int, int]]) -> list[ImageGeometry]:
        # resized, never cropped: the grid covers the whole image; the resized sizes come with the inputs
        sizes = inputs.get("image_sizes")  # (N, 2) resized (height, width)
        if sizes is None:
            return []
        cell = self._merged_patch()
        end_id = self.tokenizer.convert_tokens_to_ids(getattr(self.processor, "image_end_token", "[IMG_END]"))
        blocks = image_blocks(inputs["input_ids"][0], self.image_token_id(), end_id)
        if len(blocks) != len(sizes):
            raise AttnvizError(f"found {len(blocks)} [IMG_END]-closed images in the prompt for {len(sizes)} images")
        geometries = []
        for index, ((first, end), (height, width)) in enumerate(zip(blocks, sizes.tolist(), strict=True)):
            rows, cols = height // cell, width // cell
            if (cols + 1) * rows != end - first + 1:
                raise AttnvizError(f"image {index}: {end - first + 1} tokens are not {rows} rows of {cols} + a break")
            cells = [first + r * (cols + 1) + c for r in range(rows) for c in range(cols)]
            contiguous = rows == 1  # a single row has no [IMG_BREAK] inside it
            geometries.append(ImageGeometry(index, first, rows, cols, height, width, None if contiguous else cells))
        return geometries
