"""Ground-truth regions on the tiny twins' own geometries: exact cells (Qwen2-VL), the centre crop (LLaVA-1.5) and
anyres tile grids (LLaVA-NeXT): the point's cell is the one a panel draws under it, and it has a token."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from attnviz.regions import parse_points, point_regions
from tests.twin_tools import adapter_geometry, twin_adapter

SIZE = (200, 120)  # (W, H): a wide image, so the crop and the anyres grid both matter


def expected_cell(geom, x: float, y: float) -> tuple[int, int] | None:
    """The cell under pixel (x, y) of the caller's image, from the panel's own view box."""
    left, top, right, bottom = geom.view_box or (0.0, 0.0, *SIZE)
    u, v = (x - left) / (right - left), (y - top) / (bottom - top)
    if not (0 <= u <= 1 and 0 <= v <= 1):
        return None
    return min(int(v * geom.grid_h), geom.grid_h - 1), min(int(u * geom.grid_w), geom.grid_w - 1)


@pytest.fixture(scope="module")
def geometry_of(twin_dir):
    def _geometry(family: str):
        _, (geom,) = adapter_geometry(twin_adapter(twin_dir(family)), [Image.new("RGB", SIZE, "grey")])
        return geom

    return _geometry


@pytest.mark.parametrize("family", ["qwen2_vl", "llava", "llava_next"])
@pytest.mark.parametrize("point", [(10, 10), (100, 60), (190, 110), (35, 80)])
def test_a_points_region_is_the_cell_its_panel_draws_under_it(geometry_of, family, point):
    geom = geometry_of(family)
    (mask,) = point_regions(parse_points(f"[{point[0]}, {point[1]}]"), [geom], [SIZE], "pixels")
    want = expected_cell(geom, *point)
    if want is None:  # LLaVA-1.5 sees only the centre crop: a point outside it has no region
        assert family == "llava" and not mask.any()
        return
    assert np.argwhere(mask).tolist() == [list(want)]
    if geom.cell_positions is not None:  # anyres: the cell is one of the grid's tokens, not padding
        assert geom.cell_positions[want[0] * geom.grid_w + want[1]] >= 0


def test_the_crop_is_real_on_the_llava_twin(geometry_of):
    geom = geometry_of("llava")
    assert geom.view_box is not None and geom.view_box[0] > 0  # the sides of a wide image are cut off
    (mask,) = point_regions(parse_points("[5, 60]"), [geom], [SIZE], "pixels")
    assert not mask.any()
