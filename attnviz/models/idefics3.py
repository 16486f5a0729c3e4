"""Idefics3 and SmolVLM / SmolVLM2 (``idefics3``, ``smolvlm``): image splitting into tiles plus a global image.

The image processor resizes the image (longest edge to ``size``, aspect kept), then up to multiples of the tile
(``max_image_size``: 364 px Idefics3, 512 px SmolVLM2) and cuts it into ``rows x cols`` tiles, row by row; it adds
the whole image squeezed into one tile, the *global image*. A small image (or splitting off) is the global image
alone. Each tile's SigLIP patches are pixel-shuffled (``scale_factor`` 2: 26 -> 13; 4: 32 -> 8) into
``side x side`` tokens, raster order. The prompt marks every block::

    <fake_token_around_image><row_1_col_1><image>×side² ... (a "\\n" after each row of tiles)
    \\n<fake_token_around_image><global-img><image>×side²<fake_token_around_image>

The panel draws the stitched tile grid over the whole image, tile (r, c) where its ``<row_r_col_c>`` marker says;
the global image's tokens are image tokens with no cell (the grid already covers the image more finely). An image
that is the global image alone is drawn as that one ``side x side`` grid over the whole (squeezed) image.
"""

from __future__ import annotations

import re
from typing import Any

from attnviz.chat import IDEFICS
from attnviz.errors import AttnvizError
from attnviz.models.base import ModelAdapter
from attnviz.models.qwen2_vl import placeholder_runs
from attnviz.models.tiles import stitch_tiles
from attnviz.trace import ImageGeometry

BLOCK_MARKER = re.compile(r"<row_(\d+)_col_(\d+)>|<global-img>")


def block_labels(tokenizer: Any, ids: list[int], runs: list[tuple[int, int]]) -> list[tuple[int, int] | None]:
    """Per run of image tokens: its tile's (row, col) from 1, or None for a global image, read from the marker in
    the text before it (decoded, so a marker split into several tokens is read alike)."""
    labels, previous_end = [], 0
    for start, length in runs:
        before = tokenizer.decode(ids[previous_end:start], skip_special_tokens=False)
        markers = list(BLOCK_MARKER.finditer(before))
        if not markers:
            raise AttnvizError(f"image tokens at position {start} follow no <row_r_col_c> or <global-img> marker")
        last = markers[-1]
        labels.append(None if last.group(1) is None else (int(last.group(1)), int(last.group(2))))
        previous_end = start + length
    return labels


def group_images(labels: list[tuple[int, int] | None], runs: list[tuple[int, int]]) -> list[list[tuple[Any, int]]]:
    """Runs -> per image its blocks [(label, start)], tiles first, each image closed by its global image."""
    images, current = [], []
    for label, (start, _) in zip(labels, runs, strict=True):
        current.append((label, start))
        if label is None:
            images.append(current)
            current = []
    if current:
        raise AttnvizError("the prompt's last image tiles have no global image after them")
    return images


class Idefics3Adapter(ModelAdapter):
    family = "Idefics3"
    model_types = ("idefics3",)
    chat_formats = (IDEFICS,)

    def _side(self) -> int:
        """Tokens per tile side: SigLIP's patches per side over the pixel shuffle's ``scale_factor``."""
        vision = self.config.vision_config
        return int(vision.image_size) // int(vision.patch_size) // int(self.config.scale_factor)

    def image_geometry(self, inputs: dict[str, Any], image_sizes: list[tuple[int, int]]) -> list[ImageGeometry]:
        # the tiles and the global image cover the whole image: the sizes are not needed
        pixels = inputs.get("pixel_values")  # (B, blocks, C, tile, tile)
        if pixels is None:
            return []
        side, (tile_h, tile_w) = self._side(), tuple(pixels.shape[-2:])
        ids = inputs["input_ids"][0].tolist()
        runs = placeholder_runs(inputs["input_ids"][0], self.image_token_id())
        if any(length != side * side for _, length in runs):
            raise AttnvizError(f"image-token runs of {[n for _, n in runs]} tokens; every tile has {side * side}")
        images = group_images(block_labels(self.tokenizer, ids, runs), runs)
        if len(images) != len(image_sizes):
            raise AttnvizError(f"the prompt holds {len(images)} images' tokens for {len(image_sizes)} images")
        return [self._geometry(index, blocks, side, tile_h, tile_w) for index, blocks in enumerate(images)]

    def _geometry(
        self, index: int, blocks: list[tuple[Any, int]], side: int, tile_h: int, tile_w: int
    ) -> ImageGeometry:
        tiles, (_, global_start) = blocks[:-1], blocks[-1]
        if not tiles:  # not split: the global image is the grid
            return ImageGeometry(index, global_start, side, side, tile_h, tile_w)
        rows, cols = max(r for (r, _), _ in tiles), max(c for (_, c), _ in tiles)
        if [label for label, _ in tiles] != [(r, c) for r in range(1, rows + 1) for c in range(1, cols + 1)]:
            raise AttnvizError(f"image {index}: its tiles are not a {rows}x{cols} grid in row order")
        cells = stitch_tiles([start for _, start in tiles], rows, cols, side)
        return ImageGeometry(index, tiles[0][1], rows * side, cols * side, rows * tile_h, cols * tile_w, cells)


class SmolVLMAdapter(Idefics3Adapter):
    """SmolVLM / SmolVLM2: Idefics3's layout and turns (SmolLM2's ``<|im_start|>`` first instead of Llama 3's BOS)."""

    family = "SmolVLM"
    model_types = ("smolvlm",)
