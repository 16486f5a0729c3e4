"""Gemma 3 (``gemma3``): one fixed square grid per image, pooled from SigLIP's patches.

The image processor resizes every image to one square (gemma-3-4b-it: 896x896, aspect not kept); SigLIP's
64x64 patches are average-pooled to ``sqrt(mm_tokens_per_image)`` per side (16x16 = 256 tokens), which the
prompt holds as one run of ``<image_soft_token>`` between ``<start_of_image>`` and ``<end_of_image>``, raster
order. The grid therefore covers the whole (stretched) image.

Pan-and-scan (``do_pan_and_scan``) adds crops of the image, each with its own 256 tokens and its own region of
the image; attnviz refuses it rather than showing the crops' tokens as if they were the whole image.

Attention: Gemma's image tokens attend to each other both ways and every other layer of a pattern uses a
sliding window; both come to the capture inside the 4D mask the model builds, so nothing here adds a mask.
"""

from __future__ import annotations

import math
from typing import Any

from PIL import Image

from attnviz.chat import GEMMA
from attnviz.errors import AttnvizError
from attnviz.models.base import ModelAdapter
from attnviz.models.qwen2_vl import placeholder_runs
from attnviz.trace import ImageGeometry


class Gemma3Adapter(ModelAdapter):
    family = "Gemma 3"
    model_types = ("gemma3",)
    chat_formats = (GEMMA,)
    flash_attention = False  # it would drop the bidirectional mask over image tokens (transformers refuses it)

    def prepare_inputs(self, prompt: str, images: list[Image.Image]) -> dict[str, Any]:
        if images and getattr(self.processor.image_processor, "do_pan_and_scan", None):
            raise AttnvizError(
                "Gemma 3 pan-and-scan crops are not supported (each crop would need its own panel); "
                "set do_pan_and_scan to false in the checkpoint's preprocessor_config.json"
            )
        return super().prepare_inputs(prompt, images)

    def _side(self) -> int:
        """Tokens per side of an image's grid: the pooled SigLIP patches (16 for every released checkpoint)."""
        tokens = int(self.config.mm_tokens_per_image)
        side = math.isqrt(tokens)
        if side * side != tokens:
            raise AttnvizError(f"mm_tokens_per_image={tokens} is not a square grid")
        return side

    def image_geometry(self, inputs: dict[str, Any], image_sizes: list[tuple[int, int]]) -> list[ImageGeometry]:
        # resized to one square, never cropped: the grid covers the whole image, so the sizes are not needed
        pixels = inputs.get("pixel_values")  # (N, C, H, W)
        if pixels is None:
            return []
        side = self._side()
        runs = placeholder_runs(inputs["input_ids"][0], self.image_token_id())
        if len(runs) != len(image_sizes) or any(length != side * side for _, length in runs):
            raise AttnvizError(
                f"found image-token runs of {[n for _, n in runs]} tokens for {len(image_sizes)} images; Gemma 3 "
                f"gives every image one run of {side * side} (pan-and-scan crops are not supported)"
            )
        height, width = pixels.shape[-2:]
        return [ImageGeometry(index, start, side, side, height, width) for index, (start, _) in enumerate(runs)]
