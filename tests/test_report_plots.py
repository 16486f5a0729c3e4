"""The report's plots, drawn with Pillow alone (attnviz.report.canvas): lines, bands and gaps land where the data
says, ticks and labels read as matplotlib's, any model name draws, and the figures have their sizes."""

from __future__ import annotations

import io
import math

import pytest
from PIL import Image

from attnviz.report import plots
from attnviz.report.aggregate import Line
from attnviz.report.canvas import DPI, Canvas, nice_ticks, tick_labels

BLUE = (31, 119, 180)  # the first model's colour (matplotlib's tab10)


def decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return image.convert("RGB")


def line(model: str = "m", label: str = "correct", x=(0, 1, 2, 3), mean=(0.2, 0.4, 0.6, 0.8), spread=0.1,
         samples: int = 5) -> Line:
    return Line(model, label, list(x), list(mean), [m - spread for m in mean], [m + spread for m in mean],
                [samples] * len(x), samples)


def test_ticks_step_as_matplotlib_writes_them():
    assert nice_ticks(0.0, 1.0, 10) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(-0.15, 3.15, 10, integer=True) == [0, 1, 2, 3]
    assert nice_ticks(-1.35, 28.35, 10, integer=True) == [0, 5, 10, 15, 20, 25]
    assert tick_labels([0.0, 0.2, 1.0]) == ["0.0", "0.2", "1.0"]
    assert tick_labels([-0.05, 0.0, 0.025]) == ["−0.050", "0.000", "0.025"]  # a true minus, one width
    assert tick_labels([0, 5, 10]) == ["0", "5", "10"]


def test_a_line_its_band_and_a_gap_land_where_the_data_says():
    canvas = Canvas(4.0, 3.0)
    panel = canvas.panel((40.0, 20.0, 400.0, 300.0), (0.0, 4.0), (0.0, 1.0), [0, 4], [0.0, 1.0])  # no grid inside
    panel.band([0, 1, 2, 3, 4], [0.3] * 5, [0.7] * 5, BLUE)
    panel.line([0, 1, 2, 3, 4], [0.5, 0.5, math.nan, 0.5, 0.5], BLUE)
    image = decode(canvas.png())
    assert image.size == (round(4.0 * DPI), round(3.0 * DPI))
    on_line = image.getpixel((round(panel.x(0.5)), round(panel.y(0.5))))
    assert max(abs(a - b) for a, b in zip(on_line, BLUE, strict=True)) < 30
    band = image.getpixel((round(panel.x(0.5)), round(panel.y(0.62))))  # inside the band, off the line
    assert all(a > b for a, b in zip(band, BLUE, strict=True)) and band != (255, 255, 255)  # the light blend
    assert image.getpixel((round(panel.x(2.0)), round(panel.y(0.5)))) == band  # no value at x = 2: no line there
    outside = image.getpixel((round(panel.x(0.5)), round(panel.y(0.9))))
    assert outside[0] > 220  # above the band: background and grid only


def test_a_dashed_line_has_gaps_and_a_solid_one_none():
    canvas = Canvas(4.0, 2.0)
    panel = canvas.panel((20.0, 20.0, 420.0, 200.0), (0.0, 1.0), (0.0, 1.0), [], [])
    panel.line([0.05, 0.95], [0.7, 0.7], BLUE, "--")
    panel.line([0.05, 0.95], [0.3, 0.3], BLUE, "-")
    image = decode(canvas.png())
    dashed = [image.getpixel((x, round(panel.y(0.7))))[0] for x in range(80, 360)]
    solid = [image.getpixel((x, round(panel.y(0.3))))[0] for x in range(80, 360)]
    assert max(dashed) > 200 and min(dashed) < 80  # white gaps between dark dashes
    assert max(solid) < 80


@pytest.mark.parametrize("name", ["a\u2029b", "nul\x00x", "emoji 😀", "rtl שלום", "$x^2$", "\ud800 lone", "中文",
                                  "x" * 80])
def test_any_model_name_draws(name):
    """Names come from paths and labels: a control character, a lone surrogate or mathtext-looking text is drawn
    as text (or left out), never an error."""
    names = [name, "other"]
    png = plots.image_share_png([line(name), line("other", "incorrect")], names)
    assert decode(png).size == (round(8.5 * DPI), round(4.2 * DPI))
    assert decode(plots.position_png([line(name, "layer 3", x=range(10), mean=[0.5] * 10)], [3], names))


def test_every_plot_has_its_size_and_draws_its_panels():
    models = ["ckpt/step_200", "ckpt/step_1000"]
    share = decode(plots.image_share_png([line(m) for m in models], models))
    position = decode(plots.position_png([line(m, f"layer {k}", x=range(10), mean=[0.5] * 10) for m in models
                                          for k in (0, 4, 8, 12, 16)], [0, 4, 8, 12, 16], models))
    truth = decode(plots.ground_truth_png([line(m, "gt_share") for m in models], [line(m, "hit") for m in models],
                                          models))
    assert share.size == (935, 462) and truth.size == (1155, 418)
    assert position.size == (round((2.6 * 4 + 2.4) * DPI), round((2.7 * 2 + 0.6) * DPI))  # 5 layers: 2 rows of 4
    levels = {"image_share": [line(m) for m in models], "hit": [line(m) for m in models]}
    assert decode(plots.compare_levels_png(levels, models)).size == (round((4.1 * 2 + 2.3) * DPI), round(3.5 * DPI))
    diffs = {"gt_share": [line(models[1], mean=(-0.05, 0.0, 0.05, 0.1), spread=0.02)]}
    assert decode(plots.compare_diff_png(diffs, models)).size == (round((4.1 + 2.3) * DPI), round(3.5 * DPI))


def test_many_models_share_a_colour_ramp_in_order():
    names = [f"step_{i}" for i in range(12)]
    colours = plots.colours(names)
    assert len(set(colours.values())) == 12 and colours["step_0"] == (68, 1, 84)  # viridis starts dark purple
    assert sum(colours["step_11"]) > sum(colours["step_0"])  # and runs to yellow
