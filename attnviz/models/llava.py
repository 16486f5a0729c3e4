"""LLaVA-1.5 (``llava``): one fixed square grid per image, over what the image processor kept of the image.

The CLIP image processor resizes the shortest edge to ``size`` and centre-crops ``crop_size`` (llava-1.5-hf:
336 -> 336x336), so the 24x24 = 576 tokens (CLIP-L/14-336, CLS dropped) tile the centre crop, raster order; a
processor that pads to a square instead (``do_pad``) makes the grid cover the padded square. The geometry's
``view_box`` says which part of the caller's image that is.
"""

from __future__ import annotations

from typing import Any

import torch

from attnviz.chat import CHATML, VICUNA
from attnviz.errors import AttnvizError
from attnviz.models.base import ModelAdapter
from attnviz.trace import ImageGeometry


def image_token_positions(input_ids: torch.Tensor, token_id: int) -> list[int]:
    """(S,) ids -> positions of every ``token_id``, in order."""
    return torch.nonzero(input_ids == token_id).flatten().tolist()


def split_counts(positions: list[int], counts: list[int]) -> list[list[int]]:
    """Consecutive chunks of ``positions``, one per image, of the given token counts."""
    if sum(counts) != len(positions):
        raise AttnvizError(
            f"the prompt holds {len(positions)} image tokens but the {len(counts)} images need {sum(counts)}; "
            "the chat template must place each image once"
        )
    chunks, offset = [], 0
    for count in counts:
        chunks.append(positions[offset : offset + count])
        offset += count
    return chunks


def size_value(size: Any, key: str) -> int | None:
    """A field of an image processor's ``size``/``crop_size`` (a dict or a SizeDict)."""
    value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
    return int(value) if value is not None else None


def crop_box(width: int, height: int, image_processor: Any) -> tuple[float, float, float, float] | None:
    """The region of a ``width x height`` image the square input covers, in its pixels; None: all of it."""
    if getattr(image_processor, "do_pad", False):  # padded to a square around the image, then resized
        side = max(width, height)
        return ((width - side) / 2, (height - side) / 2, (width + side) / 2, (height + side) / 2)
    shortest = size_value(image_processor.size, "shortest_edge")
    crop = getattr(image_processor, "crop_size", None)
    if not getattr(image_processor, "do_center_crop", False) or shortest is None or crop is None:
        return None  # resized to a fixed (h, w): the grid covers the whole (stretched) image
    scale = shortest / min(width, height)  # the shortest edge becomes `shortest` px
    half_w = size_value(crop, "width") / scale / 2
    half_h = size_value(crop, "height") / scale / 2
    return (width / 2 - half_w, height / 2 - half_h, width / 2 + half_w, height / 2 + half_h)


class LlavaAdapter(ModelAdapter):
    family = "LLaVA-1.5"
    model_types = ("llava",)
    chat_formats = (VICUNA, CHATML)  # llava-1.5 / bakLlava; llava-interleave (Qwen) checkpoints are llava too

    def image_geometry(self, inputs: dict[str, Any], image_sizes: list[tuple[int, int]]) -> list[ImageGeometry]:
        pixels = inputs.get("pixel_values")  # (N, C, H, W)
        if pixels is None:
            return []
        n_images, (pixel_h, pixel_w) = pixels.shape[0], tuple(pixels.shape[-2:])
        if len(image_sizes) != n_images:
            raise AttnvizError(f"{len(image_sizes)} image sizes given for the {n_images} processed images")
        patch = int(self.config.vision_config.patch_size)
        grid_h, grid_w = pixel_h // patch, pixel_w // patch
        positions = image_token_positions(inputs["input_ids"][0], self.image_token_id())
        per_image = len(positions) // max(n_images, 1)
        extra = per_image - grid_h * grid_w  # 1 when the CLS token is kept ("full" feature selection)
        if extra not in (0, 1):
            raise AttnvizError(f"{per_image} tokens per image do not tile a {grid_h}x{grid_w} grid")
        chunks = split_counts(positions, [per_image] * n_images)
        return [
            ImageGeometry(
                index, chunk[extra], grid_h, grid_w, pixel_h, pixel_w,
                cell_positions=None if chunk[-1] - chunk[0] == per_image - 1 else chunk[extra:],
                view_box=crop_box(*size, self.processor.image_processor),
            )
            for index, (chunk, size) in enumerate(zip(chunks, image_sizes, strict=True))
        ]
