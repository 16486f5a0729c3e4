"""InternVL 3 (``internvl``): dynamic tiles plus a thumbnail, pixel-shuffled, stitched back into one grid.

The image processor (GotOcr2's, ``crop_to_patches``) picks the ``cols x rows`` grid of 448-px tiles whose aspect
is closest to the image's (``min_patches`` .. ``max_patches`` tiles), resizes the image onto it (aspect not kept)
and cuts the tiles row by row; when there is more than one tile it adds the whole image squeezed into one tile,
the *thumbnail*, last. InternViT's 32x32 patches of a tile are pixel-shuffled 2x2 into 16x16 tokens, raster
order. Per image the prompt holds ``<img>``, every tile's 256 ``<IMG_CONTEXT>`` tokens in tile order (the
thumbnail's last), ``</img>``.

The panel draws the stitched tile grid (``rows·16 x cols·16`` cells) over the whole image; the thumbnail's tokens
are image tokens with no cell (the grid already covers the image at the tiles' higher resolution). An image
small enough for one tile has no thumbnail: its one tile is the grid.
"""

from __future__ import annotations

from typing import Any

from transformers.models.got_ocr2.image_processing_got_ocr2 import get_optimal_tiled_canvas

from attnviz.chat import CHATML
from attnviz.errors import AttnvizError
from attnviz.models.base import ModelAdapter
from attnviz.models.llava import size_value
from attnviz.models.qwen2_vl import placeholder_runs
from attnviz.models.tiles import stitch_tiles
from attnviz.trace import ImageGeometry


class InternVLAdapter(ModelAdapter):
    family = "InternVL3"
    model_types = ("internvl",)
    chat_formats = (CHATML,)  # Qwen2.5 turns (InternVL3-2B/8B); no default system prompt in the -hf templates

    def _side(self) -> int:
        """Tokens per tile side: InternViT's patches per side, pixel-shuffled by ``downsample_ratio`` (32 -> 16)."""
        vision = self.config.vision_config
        size, patch = vision.image_size, vision.patch_size
        size, patch = (size[0], patch[0]) if isinstance(size, (list, tuple)) else (size, patch)
        return int(int(size) // int(patch) * float(self.config.downsample_ratio))

    def tile_grid(self, width: int, height: int, n_tiles: int) -> tuple[int, int]:
        """(rows, cols) of the tiles one ``width x height`` image was cut into, given the ``n_tiles`` tiles its
        tokens say it has (thumbnail included); the grid is the image processor's own choice."""
        if n_tiles == 1:  # one tile (tiling off, or the image fits one): no thumbnail
            return 1, 1
        processor = self.processor.image_processor
        tile = (size_value(processor.size, "height"), size_value(processor.size, "width"))
        cols, rows = get_optimal_tiled_canvas(
            (height, width), tile, int(processor.min_patches), int(processor.max_patches)
        )
        if rows * cols + 1 != n_tiles:
            raise AttnvizError(
                f"a {width}x{height} image has {n_tiles} tiles' tokens, but its {cols}x{rows} tile grid and "
                f"thumbnail make {rows * cols + 1}; the image processor's settings changed between the calls"
            )
        return rows, cols

    def image_geometry(self, inputs: dict[str, Any], image_sizes: list[tuple[int, int]]) -> list[ImageGeometry]:
        pixels = inputs.get("pixel_values")  # (tiles of every image, C, tile, tile)
        if pixels is None:
            return []
        side, (tile_h, tile_w) = self._side(), tuple(pixels.shape[-2:])
        runs = placeholder_runs(inputs["input_ids"][0], self.image_token_id())
        if len(runs) != len(image_sizes) or any(length % (side * side) for _, length in runs):
            raise AttnvizError(
                f"found image-token runs of {[n for _, n in runs]} tokens for {len(image_sizes)} images; InternVL "
                f"gives every image one run of {side * side} tokens per tile; the chat template must place each "
                "image once"
            )
        geometries = []
        for index, ((start, length), (width, height)) in enumerate(zip(runs, image_sizes, strict=True)):
            rows, cols = self.tile_grid(width, height, length // (side * side))
            starts = [start + t * side * side for t in range(rows * cols)]  # the thumbnail's block is not drawn
            cells = stitch_tiles(starts, rows, cols, side)
            geometries.append(ImageGeometry(index, start, rows * side, cols * side, rows * tile_h, cols * tile_w,
                                            cells if rows * cols > 1 else None))
        return geometries
