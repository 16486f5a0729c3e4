"""Overlays and image panels: coordinates, ground truth, segments, exact cell edges, heatmap (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from attnviz.config import OverlayConfig, RenderConfig
from attnviz.errors import AttnvizError
from attnviz.render import parse_points, segment_labels
from attnviz.render.colors import POINT_RGB, TRUTH_RGB, colormap_lut
from attnviz.render.image_panel import bilinear, interpolate
from attnviz.render.overlays import Point, completion_steps, to_unit
from attnviz.rerender import ground_truth_of
from attnviz.trace import ImageGeometry
from tests.test_render import GREY, LAYER, grey_images, make_trace, renderer


def test_default_regex_finds_points_and_image_numbers():
    text = "go (120, 340) then image 2 [5,6.5] and (oops, 3)"
    points = parse_points(text)
    assert [(p.image, p.x, p.y) for p in points] == [(0, 120, 340), (1, 5, 6.5)]
    assert text[: points[0].end].endswith("(120, 340)")


def test_custom_regex_and_bad_regexes():
    assert [(p.x, p.y) for p in parse_points("x=3 y=4", r"x=(?P<x>\d+) y=(?P<y>\d+)")] == [(3, 4)]
    with pytest.raises(AttnvizError, match="named groups"):
        parse_points("(1,2)", r"\((\d+),(\d+)\)")
    with pytest.raises(AttnvizError, match="regular expression"):
        parse_points("(1,2)", r"(?P<x>")


def test_coordinate_spaces():
    geom = ImageGeometry(0, 0, grid_h=4, grid_w=8, pixel_h=112, pixel_w=224)
    p = Point(0, 3, 1, 0)
    assert to_unit(Point(0, 500, 250, 0), "norm1000", geom, (640, 480)) == (0.5, 0.25)
    assert to_unit(Point(0, 320, 120, 0), "pixels", geom, (640, 480)) == (0.5, 0.25)
    assert to_unit(Point(0, 112, 28, 0), "model_pixels", geom, (640, 480)) == (0.5, 0.25)
    assert to_unit(p, "cells", geom, (640, 480)) == (3.5 / 8, 1.5 / 4)  # the cell's centre
    with pytest.raises(AttnvizError, match="overlay.space"):
        to_unit(p, "inches", geom, (640, 480))


def test_coordinates_of_the_given_image_land_inside_a_centre_crop():
    # a 640x480 image whose middle 480x480 (LLaVA-1.5's centre crop) is all the grid and the panel show
    geom = ImageGeometry(0, 0, grid_h=24, grid_w=24, pixel_h=336, pixel_w=336, view_box=(80, 0, 560, 480))
    assert to_unit(Point(0, 320, 240, 0), "pixels", geom, (640, 480)) == (0.5, 0.5)  # the centre stays the centre
    assert to_unit(Point(0, 80, 120, 0), "pixels", geom, (640, 480)) == (0.0, 0.25)  # the crop's left edge
    assert to_unit(Point(0, 875, 500, 0), "norm1000", geom, (640, 480)) == (1.0, 0.5)  # x 560 px: right edge
    assert to_unit(Point(0, 40, 0, 0), "pixels", geom, (640, 480))[0] < 0  # cut off by the crop: not drawn
    assert to_unit(Point(0, 168, 84, 0), "model_pixels", geom, (640, 480)) == (0.5, 0.25)  # already the crop


def test_a_point_appears_at_the_token_that_completes_it():
    tokens = ["I", " say", " (", "1", "2", ",", " 3", ")", " and", " (4,5)"]
    points = parse_points("".join(tokens))
    assert completion_steps(tokens, points) == [7, 9]


def test_segment_labels_follow_think_and_answer_tags_even_split_over_tokens():
    tokens = ["<", "think", ">", "hm", "</think>", "\n", "<answer>", "(1,2)", "</answer>", "."]
    assert segment_labels(tokens) == ["think"] * 5 + ["", "answer", "answer", "answer", ""]
    assert segment_labels(["<think>", "never", " closed"]) == ["think"] * 3


def test_ground_truth_comes_from_the_configured_sample_field():
    cfg = RenderConfig()
    assert ground_truth_of({"answer": "(1,2)", "solution": "x"}, cfg) == "(1,2)"
    cfg.overlay.ground_truth_key = "solution"
    assert ground_truth_of({"answer": "(1,2)", "solution": "x"}, cfg) == "x"
    cfg.overlay.enabled = False
    assert ground_truth_of({"solution": "x"}, cfg) is None


def test_points_drawn_in_their_colours_from_their_frame():
    trace = make_trace(grids=((4, 4),), answer=(" at", " (", "1", ",", "2", ")", " ok"))
    cfg = dict(overlay=OverlayConfig(space="cells"), grid_lines=False)
    r = renderer(trace, grey_images(1, (200, 200)), ground_truth="(3,0)", **cfg)
    tile = r.image.tiles[0]
    w, h = tile.size
    ox, oy = r.image_origin[0] + tile.x, r.image_origin[1] + tile.y

    def near(frame, col, row, rgb) -> bool:  # rgb within the cell (col, row) of the 4 x 4 grid
        cell = frame[oy + row * h // 4 : oy + (row + 1) * h // 4, ox + col * w // 4 : ox + (col + 1) * w // 4]
        return bool((cell == rgb).all(axis=2).any())

    assert near(r.render(0), 3, 0, TRUTH_RGB)  # the ground truth shows from the first frame
    assert not near(r.render(4), 1, 2, POINT_RGB)  # ")" not yet written
    assert near(r.render(5), 1, 2, POINT_RGB) and near(r.render(6), 1, 2, POINT_RGB)
    plain = renderer(trace, grey_images(1, (200, 200)), **cfg)
    assert not near(plain.render(0), 3, 0, TRUTH_RGB)
    off = renderer(trace, grey_images(1, (200, 200)), overlay=OverlayConfig(enabled=False), grid_lines=False)
    assert off.image.stamps == []


def test_points_off_the_image_warn_and_are_skipped(caplog):
    trace = make_trace(answer=(" (", "2000", ",", "5", ")"))
    r = renderer(trace, grey_images(1))
    assert r.image.stamps == [] and "outside the images" in caplog.text


# --- image panel -----------------------------------------------------------------------------------------


def test_a_pixel_on_a_cell_edge_mixes_both_cells_by_overlap():
    """3 cells over 10 pixels: pixel 3 is one third cell 0 (red) and two thirds cell 1 (green)."""
    trace = make_trace(grids=((1, 3),))
    trace.rows[LAYER][0, trace.images[0].token_start + 1] = 1.0  # cell 1 hot: green; cells 0, 2 red
    r = renderer(trace, grey_images(1, (10, 1)), width=640, height=360, grid_lines=False)
    tile = r.image.tiles[0]
    w, h = tile.size
    assert w % 3 != 0  # edges fall inside pixels
    frame = r.render(0)
    row = frame[r.image_origin[1] + tile.y + h // 2, r.image_origin[0] + tile.x :][:w].astype(int)  # (w, 3)
    a = int(round(RenderConfig().tint_alpha * 256))
    base = np.array(GREY) * (256 - a) >> 8
    edge = int(w / 3)  # the pixel holding the edge at w / 3
    share = w / 3 - edge  # how much of it lies in cell 0
    expected = base + np.floor((share * np.array([255, 0, 0]) + (1 - share) * np.array([0, 255, 0])) * a / 256 + 1e-3)
    np.testing.assert_array_equal(row[edge], expected)
    np.testing.assert_array_equal(row[0], base + (np.array([255, 0, 0]) * a >> 8))  # pure cells: exact colours
    np.testing.assert_array_equal(row[edge + 2], base + (np.array([0, 255, 0]) * a >> 8))


def test_bilinear_interpolation_passes_through_cell_centres():
    i0, f = bilinear(4, 12)  # cells 3 px wide: centres at 1.5, 4.5, 7.5, 10.5 = centres of pixels 1, 4, 7, 10
    values = np.array([0.0, 1.0, 0.0, 1.0])
    out = interpolate(values, i0, f, axis=0)  # (12,)
    np.testing.assert_allclose(out[[1, 4, 7, 10]], values, atol=1e-6)
    np.testing.assert_allclose(out[[0, 2, 3, 11]], [0, 1 / 3, 2 / 3, 1], atol=1e-6)  # clamped at the borders


def test_heatmap_is_smooth_and_peaks_on_the_hot_cell():
    trace = make_trace(grids=((3, 3),))
    trace.rows[LAYER][0, trace.images[0].token_start + 4] = 1.0  # the centre cell
    r = renderer(trace, grey_images(1, (300, 300)), image_mode="heatmap", colormap="viridis", grid_lines=False)
    tile = r.image.tiles[0]
    w, h = tile.size
    frame = r.render(0)
    line = frame[r.image_origin[1] + tile.y + h // 2, r.image_origin[0] + tile.x :][:w].astype(int)  # (w, 3)
    lut = colormap_lut("viridis")
    a = int(round(RenderConfig().tint_alpha * 256))
    hot = (np.array(GREY) * (256 - a) >> 8) + (lut[-1].astype(int) * a >> 8)
    np.testing.assert_array_equal(line[w // 2], hot)  # the centre of the hot cell: the top of the map
    assert len({tuple(p) for p in line}) > 20  # many shades across: interpolated, not three flat cells
    with pytest.raises(ValueError, match="image_mode"):
        renderer(trace, grey_images(1), image_mode="blur")
