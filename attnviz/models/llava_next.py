"""LLaVA-NeXT and LLaVA-OneVision: "anyres" images, a base tile plus a stitched, unpadded tile grid.

The image processor picks the best grid of ``tile x tile`` crops for the image's aspect (``image_grid_pinpoints``),
resizes the image into it (padding the rest) and adds the whole image squeezed into one tile (the base tile).
Per image the language model sees, in order: the base tile's ``side x side`` tokens, then the stitched tile grid
with the padding rows (or columns) removed — ``grid_h`` rows of ``grid_w`` tokens, each row followed by a newline
token. OneVision shrinks that grid (bilinear) when it holds more than ``anyres_max_N`` tiles' worth, and gives an
image of a multi-image prompt its base tile only (plus one newline), padded to a square around the image.

The panel draws the stitched grid over the whole image (for OneVision's multi-image prompts the base tile over
the padded square). The base tile and the newline tokens are image tokens no panel cell shows. Grid sizes are
transformers' own arithmetic, restated here (:func:`unpadded_grid`, :func:`shrunk_grid`) because the processor
keeps it private; ``tests/test_geometry_families.py`` compares it with the model's ``pack_image_features``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from transformers.image_processing_utils import select_best_resolution

from attnviz.chat import CHATML, LLAMA3, MISTRAL_INST, VICUNA
from attnviz.errors import AttnvizError
from attnviz.models.base import ModelAdapter
from attnviz.models.llava import image_token_positions, split_counts
from attnviz.trace import ImageGeometry


@dataclass(frozen=True)
class Layout:
    """One image's tokens: ``base`` tokens, then ``grid_h`` rows of ``grid_w`` cells (+1 newline each if stitched)."""

    base: int  # tokens before the grid (the base tile; 0 when the grid is the base tile)
    grid_h: int
    grid_w: int
    newlines: bool  # a newline token after every grid row (stitched grid) or one at the end (base-tile grid)
    pixel_h: int  # the image as the model saw it (resized into the tile grid, or the base tile)
    pixel_w: int
    view_box: tuple[float, float, float, float] | None = None  # the grid's region of the caller's image

    @property
    def n_tokens(self) -> int:
        return self.base + self.grid_h * (self.grid_w + 1 if self.newlines else self.grid_w) + (not self.newlines)

    def cell_positions(self, chunk: list[int]) -> list[int]:
        """This image's token positions -> the grid's cell positions, raster order."""
        stride = self.grid_w + 1 if self.newlines else self.grid_w
        return [chunk[self.base + r * stride + c] for r in range(self.grid_h) for c in range(self.grid_w)]


def unpadded_grid(height: int, width: int, tiles_h: int, tiles_w: int, side: int) -> tuple[int, int]:
    """(rows, cols) of tokens left of a ``tiles_h x tiles_w`` grid of ``side x side``-token tiles once the padding
    around a ``height x width`` image is cut off, as ``modeling_llava_next.unpad_image`` cuts it.

    The image was fitted into the grid, aspect kept, and centred: the side it does not fill loses ``padding`` tokens
    at both ends. Same float expressions and rounding as transformers (``round(..., 7)`` then ``int``), so the
    counts match the processor's placeholder tokens exactly.
    """
    rows, cols = tiles_h * side, tiles_w * side
    if width / height > cols / rows:  # wider than the grid: padded above and below
        new_rows = int(round(height * (cols / width), 7))
        rows -= (rows - new_rows) // 2 * 2
    else:  # padded left and right
        new_cols = int(round(width * (rows / height), 7))
        cols -= (cols - new_cols) // 2 * 2
    return rows, cols


def shrunk_grid(rows: int, cols: int, side: int, max_tiles: int) -> tuple[int, int]:
    """OneVision's ``anyres_max_N``: a grid of more than ``1.1² · N`` tiles' worth of tokens is resized (bilinear)
    down to about ``N`` tiles' worth, as ``LlavaOnevisionModel.pack_image_features`` does (floor division by a
    float ratio, then ``int``)."""
    ratio = math.sqrt(rows * cols / (max_tiles * side**2))
    if ratio > 1.1:
        return int(rows // ratio), int(cols // ratio)
    return rows, cols


def max_tiles(vision_aspect_ratio: str) -> int:
    """``"anyres_max_9"`` -> 9 (transformers ``strip``s the characters of ``"anyres_max_"``: the same number)."""
    number = str(vision_aspect_ratio).removeprefix("anyres_max_")
    if not number.isdigit():
        raise AttnvizError(f"vision_aspect_ratio={vision_aspect_ratio!r}: expected anyres_max_<tiles>")
    return int(number)


class LlavaNextAdapter(ModelAdapter):
    family = "LLaVA-NeXT"
    model_types = ("llava_next",)
    # llava-v1.6-mistral; vicuna-7b/13b; 34b (Yi), 72b/110b (Qwen); llama3-llava-next-8b
    chat_formats = (MISTRAL_INST, VICUNA, CHATML, LLAMA3)

    def _tile(self) -> tuple[int, int]:
        """(tile size in px, tokens per tile side)."""
        vision = self.config.vision_config
        return int(vision.image_size), int(vision.image_size) // int(vision.patch_size)

    def _base_tokens(self) -> int:
        side = self._tile()[1]
        cls = int(getattr(self.processor, "num_additional_image_tokens", 0) or 0)
        dropped = 1 if getattr(self.processor, "vision_feature_select_strategy", None) == "default" else 0
        return side * side + cls - dropped

    def stitched_layout(self, height: int, width: int) -> Layout:
        """The layout of one ``height x width`` image split into tiles."""
        tile, side = self._tile()
        best_h, best_w = select_best_resolution([height, width], self.config.image_grid_pinpoints)
        rows, cols = self.fit_grid(*unpadded_grid(height, width, best_h // tile, best_w // tile, side))
        scale = min(best_h / height, best_w / width)  # the image is fitted into the best grid, aspect kept
        return Layout(self._base_tokens(), rows, cols, True, round(height * scale), round(width * scale))

    def fit_grid(self, rows: int, cols: int) -> tuple[int, int]:
        """The unpadded grid as the language model gets it: LLaVA-NeXT keeps it whole."""
        return rows, cols

    def layouts(self, inputs: dict[str, Any]) -> list[Layout]:
        return [self.stitched_layout(h, w) for h, w in inputs["image_sizes"].tolist()]

    def image_geometry(self, inputs: dict[str, Any], image_sizes: list[tuple[int, int]]) -> list[ImageGeometry]:
        # the grid covers the whole image (or a square padded around it), so the processor's own (H, W) sizes in
        # ``inputs["image_sizes"]`` say all there is; the caller's ``image_sizes`` are the same images
        if inputs.get("image_sizes") is None:
            return []
        layouts = self.layouts(inputs)
        positions = image_token_positions(inputs["input_ids"][0], self.image_token_id())
        chunks = split_counts(positions, [layout.n_tokens for layout in layouts])
        geometries = []
        for index, (layout, chunk) in enumerate(zip(layouts, chunks, strict=True)):
            if layout.grid_h < 1 or layout.grid_w < 1:
                raise AttnvizError(f"image {index}: an empty {layout.grid_h}x{layout.grid_w} token grid")
            cells = layout.cell_positions(chunk)
            geometries.append(
                ImageGeometry(
                    index, chunk[0], layout.grid_h, layout.grid_w, layout.pixel_h, layout.pixel_w, cells,
                    layout.view_box,
                )
            )
        return geometries


class LlavaOnevisionAdapter(LlavaNextAdapter):
    family = "LLaVA-OneVision"
    model_types = ("llava_onevision",)
    chat_formats = (CHATML,)  # Qwen2 turns

    def prepare_inputs(self, prompt: str, images: list[Any]) -> dict[str, Any]:
        """All images of the prompt as one sample: OneVision treats a multi-image prompt differently."""
        return dict(self.processor(text=[prompt], images=[images] if images else None, return_tensors="pt"))

    def layouts(self, inputs: dict[str, Any]) -> list[Layout]:
        counts = inputs.get("batch_num_images")
        sizes = inputs["image_sizes"].tolist()
        counts = [1] * len(sizes) if counts is None else [int(n) for n in counts.tolist()]
        alone = [n == 1 for n in counts for _ in range(n)]  # as the processor and the model decide it
        return [
            self.stitched_layout(h, w) if single else self.padded_base_layout(h, w)
            for (h, w), single in zip(sizes, alone, strict=True)
        ]

    def fit_grid(self, rows: int, cols: int) -> tuple[int, int]:
        """Shrunk to ``anyres_max_N`` tiles' worth: the model's setting (it decides the grid), else the processor's."""
        setting = getattr(self.config, "vision_aspect_ratio", None) or self.processor.vision_aspect_ratio
        return shrunk_grid(rows, cols, self._tile()[1], max_tiles(setting))

    def padded_base_layout(self, height: int, width: int) -> Layout:
        """An image of a multi-image prompt: padded to a square, resized to one tile, ``side x side`` tokens."""
        tile, side = self._tile()
        edge = max(height, width)
        box = ((width - edge) / 2, (height - edge) / 2, (width + edge) / 2, (height + edge) / 2)
        return Layout(0, side, side, False, tile, tile, box)
