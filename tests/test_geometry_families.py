"""Image-token geometry of every family, checked against answers that do not come from the adapters.

- one-hot rows: the k-th cell token of image i lights cell (k // w, k % w) of image i and nothing else;
- pixels: a bright spot in the caller's image lights the cell that covers it — through the processor's pixels
  (Qwen, LLaVA-1.5: patch brightness) and, for anyres, through the model's own ``pack_image_features``, which
  stitches, unpads and newline-separates the tiles exactly as generation does.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText
from transformers.image_processing_utils import select_best_resolution

from attnviz.models.llava_next import unpadded_grid
from tests.twin_tools import adapter_geometry, twin_adapter
from tests.twins import FAMILIES

VISION = [f for f in FAMILIES if f != "text"]
SIZES = [(100, 70), (60, 90)]  # (W, H): one wide, one tall image


@pytest.fixture(scope="module")
def adapters(twin_dir):
    def _adapter(family: str):
        return twin_adapter(twin_dir(family))

    return _adapter


def _geometry(adapter, images):
    return adapter_geometry(adapter, images)


def _spot_image(size: tuple[int, int], centre: tuple[float, float], radius: float) -> Image.Image:
    """Black (W, H) image with a white square of half-side ``radius`` px around ``centre`` (x, y)."""
    pixels = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    x, y = centre
    pixels[max(0, round(y - radius)) : round(y + radius), max(0, round(x - radius)) : round(x + radius)] = 255
    return Image.fromarray(pixels)


@pytest.mark.parametrize("family", VISION)
def test_every_cell_token_is_an_image_token_and_images_do_not_overlap(adapters, family):
    adapter = adapters(family)
    inputs, geometry = _geometry(adapter, [Image.new("RGB", size) for size in SIZES])
    ids = inputs["input_ids"][0]
    assert [g.index for g in geometry] == [0, 1]
    seen: set[int] = set()
    for g in geometry:
        positions = list(g.positions)
        assert len(positions) == g.grid_h * g.grid_w and not seen & set(positions)
        assert all(int(ids[p]) == adapter.image_token_id() for p in positions)
        seen |= set(positions)
    assert max(geometry[0].positions) < min(geometry[1].positions)


@pytest.mark.parametrize("family", VISION)
@pytest.mark.parametrize("image_index", [0, 1])
def test_one_hot_row_on_kth_cell_token_lights_cell_k_of_that_image_only(adapters, family, image_index):
    adapter = adapters(family)
    inputs, geometry = _geometry(adapter, [Image.new("RGB", size) for size in SIZES])
    target = geometry[image_index]
    n_cells = target.grid_h * target.grid_w
    for k in sorted({0, 1, target.grid_w, n_cells // 2, n_cells - 1}):
        row = np.zeros(inputs["input_ids"].shape[1], dtype=np.float32)
        row[list(target.positions)[k]] = 1.0
        for g in geometry:
            lit = np.argwhere(g.cell_weights(row) == 1.0).tolist()
            assert lit == ([[k // g.grid_w, k % g.grid_w]] if g is target else []), (family, k)


def _qwen_cell_brightness(inputs, geometry, merge: int) -> list[np.ndarray]:
    """Per image, (grid_h, grid_w) mean brightness of each merged cell from the processor's patches."""
    means = inputs["pixel_values"].float().mean(dim=1)  # (n_patches,): merge² consecutive patches per cell
    out, offset = [], 0
    for g in geometry:
        n = g.grid_h * g.grid_w * merge * merge
        out.append(means[offset : offset + n].reshape(-1, merge * merge).mean(dim=1).reshape(g.grid_h, g.grid_w))
        offset += n
    return [o.numpy() for o in out]


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl", "glm4v"])
@pytest.mark.parametrize("cell", [(0, 0), (1, 2), (2, 3)])
def test_qwen_bright_cell_is_token_k(adapters, family, cell):
    adapter = adapters(family)
    image_processor = adapter.processor.image_processor
    cell_px = image_processor.patch_size * image_processor.merge_size  # 28 (Qwen2.5-VL, GLM-4.1V), 32 (Qwen3-VL)
    size = (4 * cell_px, 3 * cell_px)  # already a multiple of the cell: not resized
    image = _spot_image(size, ((cell[1] + 0.5) * cell_px, (cell[0] + 0.5) * cell_px), cell_px / 2)
    inputs, geometry = _geometry(adapter, [Image.new("RGB", (2 * cell_px, 2 * cell_px)), image])
    assert (geometry[1].grid_h, geometry[1].grid_w) == (3, 4)
    brightness = _qwen_cell_brightness(inputs, geometry, image_processor.merge_size)[1]
    assert np.unravel_index(brightness.argmax(), brightness.shape) == cell


@pytest.mark.parametrize("centre", [(23.75, 8.75), (41.25, 43.75), (76.25, 61.25)])  # cell centres of the crop
def test_llava_grid_covers_the_centre_crop(adapters, centre):
    """A spot in the caller's 100x70 image lands in the patch its centre-crop coordinates say."""
    adapter = adapters("llava")
    inputs, (g,) = _geometry(adapter, [_spot_image((100, 70), centre, 4)])
    left, top, right, bottom = g.view_box
    assert (left, top, right, bottom) == pytest.approx((15, 0, 85, 70))  # the central 70x70 square
    patch = adapter.config.vision_config.patch_size
    brightness = inputs["pixel_values"][0].float().mean(dim=0)  # (H, W)
    brightness = brightness.reshape(g.grid_h, patch, g.grid_w, patch).mean(dim=(1, 3)).numpy()
    expected = (int((centre[1] - top) / (bottom - top) * g.grid_h), int((centre[0] - left) / (right - left) * g.grid_w))
    assert np.unravel_index(brightness.argmax(), brightness.shape) == expected
    assert g.view(Image.new("RGB", (100, 70))).size == (70, 70)


def _packed_patch_brightness(model, adapter, inputs) -> list[torch.Tensor]:
    """Per image, the model's own packing of per-patch brightness: (n_tokens,) in its token order."""
    tile, side = adapter._tile()
    patch = tile // side
    features = []
    tiles = _tiles_per_image(model, inputs)
    for pixels, n_tiles in zip(inputs["pixel_values"], tiles, strict=True):  # (max_tiles, C, tile, tile)
        means = pixels[:n_tiles].float().mean(dim=1).reshape(n_tiles, side, patch, side, patch).mean(dim=(2, 4))
        features.append(means.reshape(n_tiles, side * side, 1))  # (tiles, side², 1): a 1-d "feature" per patch
    packed, _ = model.model.pack_image_features(features, inputs["image_sizes"], **_pack_kwargs(model))
    return [p[:, 0] for p in packed]


def _pack_kwargs(model) -> dict:
    """``pack_image_features``'s family-specific arguments; the newline token's 1-d feature is NaN (marks it)."""
    kwargs = {"image_newline": torch.full((1,), float("nan"))}
    if "vision_feature_select_strategy" in model.model.pack_image_features.__code__.co_varnames:
        kwargs["vision_feature_select_strategy"] = "default"
    else:
        kwargs["vision_aspect_ratio"] = model.config.vision_aspect_ratio
    return kwargs


def _tiles_per_image(model, inputs) -> list[int]:
    from transformers.models.llava_next.modeling_llava_next import image_size_to_num_patches

    counts = inputs["batch_num_images"].tolist() if "batch_num_images" in inputs else [1] * len(inputs["image_sizes"])
    alone = [n == 1 for n in counts for _ in range(n)]
    config = model.config
    return [
        image_size_to_num_patches(size, config.image_grid_pinpoints, config.vision_config.image_size) if one else 1
        for size, one in zip(inputs["image_sizes"].tolist(), alone, strict=True)
    ]


@pytest.mark.parametrize(
    "family,sizes,which,where",
    [
        ("llava_next", [(100, 70)], 0, (0.7, 0.2)),
        ("llava_next", [(60, 150)], 0, (0.2, 0.7)),
        ("llava_onevision", [(100, 70)], 0, (0.2, 0.8)),
        ("llava_onevision", [(336, 300)], 0, (0.8, 0.3)),  # > 9 tiles' worth: the grid is shrunk (bilinear)
        ("llava_onevision", [(100, 70), (60, 90)], 1, (0.75, 0.25)),  # multi-image: padded base tiles only
        ("llava_onevision", [(100, 70), (60, 90)], 0, (0.5, 0.9)),
    ],
)
def test_anyres_spot_lights_its_cell_of_the_stitched_grid(twin_dir, adapters, family, sizes, which, where):
    """A spot centred on cell (r, c) of the grid over the caller's image: the model's packing puts it there."""
    adapter = adapters(family)
    model = AutoModelForImageTextToText.from_pretrained(twin_dir(family), local_files_only=True)
    _, blank = _geometry(adapter, [Image.new("RGB", size) for size in sizes])
    g = blank[which]
    cell = (int(where[0] * g.grid_h), int(where[1] * g.grid_w))
    left, top, right, bottom = g.view_box or (0, 0, *sizes[which])  # the grid's part of the image
    cell_w, cell_h = (right - left) / g.grid_w, (bottom - top) / g.grid_h
    centre = (left + (cell[1] + 0.5) * cell_w, top + (cell[0] + 0.5) * cell_h)
    spot = _spot_image(sizes[which], centre, 0.35 * min(cell_w, cell_h))
    images = [spot if i == which else Image.new("RGB", size) for i, size in enumerate(sizes)]
    inputs, geometry = _geometry(adapter, images)
    packed = _packed_patch_brightness(model, adapter, inputs)
    ids = inputs["input_ids"][0]
    image_positions = torch.nonzero(ids == adapter.image_token_id()).flatten()
    assert len(image_positions) == sum(len(p) for p in packed)
    row = np.zeros(len(ids), dtype=np.float32)
    row[image_positions.numpy()] = torch.cat(packed).numpy()  # the model's token order, scattered like a row
    cells = geometry[which].cell_weights(row)
    assert not np.isnan(cells).any()  # no newline token among the cells
    assert np.unravel_index(cells.argmax(), cells.shape) == cell


# (W, H): wide, tall, square, odd roundings, extreme aspects, and (OneVision) grids past anyres_max_9's shrink
ANYRES_SIZES = [
    (100, 70), (60, 150), (56, 56), (113, 57), (57, 113), (300, 40), (40, 300), (336, 300), (300, 336), (1000, 230),
]


def _model_grid(model, width: int, height: int) -> tuple[int, int, int]:
    """(tokens, rows, cols) of one image alone as the model's own ``pack_image_features`` lays it out: the rows are
    its newline tokens; cols the cells per row."""
    from transformers.models.llava_next.modeling_llava_next import image_size_to_num_patches

    vision = model.config.vision_config
    side = vision.image_size // vision.patch_size
    tiles = image_size_to_num_patches((height, width), model.config.image_grid_pinpoints, vision.image_size)
    features = [torch.zeros(tiles, side * side, 1)]  # base tile + grid tiles, one 1-d feature per patch
    (packed,), _ = model.model.pack_image_features(features, torch.tensor([[height, width]]), **_pack_kwargs(model))
    rows = int(torch.isnan(packed[:, 0]).sum())
    return len(packed), rows, (len(packed) - side * side - rows) // rows


@pytest.mark.parametrize("family", ["llava_next", "llava_onevision"])
def test_unpadded_grid_matches_the_models_packing(twin_dir, adapters, family):
    """Our restatement of transformers' unpadding (and OneVision's shrink) against the model's own packing: when
    this fails, transformers changed that arithmetic and ``attnviz.models.llava_next`` must follow."""
    adapter = adapters(family)
    model = AutoModelForImageTextToText.from_pretrained(twin_dir(family), local_files_only=True)
    shrunk = 0
    for width, height in ANYRES_SIZES:
        layout = adapter.stitched_layout(height, width)
        tokens, rows, cols = _model_grid(model, width, height)
        assert (layout.n_tokens, layout.grid_h, layout.grid_w) == (tokens, rows, cols), (
            f"{family} {width}x{height}: attnviz's unpadded_grid/shrunk_grid say {layout.grid_h}x{layout.grid_w} "
            f"({layout.n_tokens} tokens), transformers' pack_image_features packs {rows}x{cols} ({tokens} tokens)"
        )
        tile, side = adapter._tile()
        best_h, best_w = select_best_resolution([height, width], model.config.image_grid_pinpoints)
        shrunk += (rows, cols) != unpadded_grid(height, width, best_h // tile, best_w // tile, side)
    assert (shrunk > 0) == (family == "llava_onevision")  # the shrink is exercised, and OneVision's only


@pytest.mark.parametrize("family", ["llava_next", "llava_onevision"])
def test_unpadded_grid_matches_the_processors_private_helper(adapters, family):
    """Where the processor still has its private helper, it counts the same tokens (its placeholders)."""
    adapter = adapters(family)
    helper = getattr(adapter.processor, "_get_unpadded_features", None)
    if helper is None:
        pytest.skip(f"{type(adapter.processor).__name__} has no private _get_unpadded_features in this transformers; "
                    "test_unpadded_grid_matches_the_models_packing is the check")
    tile, side = adapter._tile()
    for width, height in ANYRES_SIZES:
        best_h, best_w = select_best_resolution([height, width], adapter.config.image_grid_pinpoints)
        tokens, rows = helper(height, width, side, side, best_h // tile, best_w // tile)
        layout = adapter.stitched_layout(height, width)
        assert (layout.grid_h * layout.grid_w, layout.grid_h) == (tokens, rows), (family, width, height)
