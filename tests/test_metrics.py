"""Grounding metrics against hand-computed answers, ground-truth regions on every kind of geometry, the scorers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from attnviz.metrics import key_classes, metric_rows, segment_steps, step_metrics
from attnviz.regions import Box, box_regions, parse_boxes, parse_points, point_regions
from attnviz.schema import ScorerConfig
from attnviz.scoring import extract_answer, score
from attnviz.trace import ImageGeometry, Trace

# prompt: 0 bos(sink) | 1 "Where" (text) | 2-5 a 2x2 image | 6 "?" (text); answer: "(", "1", ",", "0", ")"
PROMPT = ["<s>", "Where", "<img>", "<img>", "<img>", "<img>", "?"]
ANSWER = ["(", "1", ",", "0", ")"]
KINDS = ["special", "text", "image", "image", "image", "image", "text"] + ["text"] * 5
GEOM = ImageGeometry(0, 2, 2, 2, 28, 28)


def trace_with(rows: np.ndarray) -> Trace:
    texts = PROMPT + ANSWER
    return Trace(list(range(len(texts))), texts, KINDS, len(PROMPT), images=[GEOM], rows={0: rows})


def row(values: dict[int, float], step: int) -> np.ndarray:
    out = np.zeros(len(PROMPT) + len(ANSWER) - 1)
    for pos, v in values.items():
        out[pos] = v
    assert len(np.flatnonzero(out)) == 0 or max(np.flatnonzero(out)) < len(PROMPT) + step
    return out


def test_step_metrics_match_the_formulas():
    rows = np.stack([
        row({0: 0.2, 1: 0.1, 2: 0.4, 3: 0.1, 4: 0.1, 5: 0.1}, 0),  # step 0: image 0.7, cell (0,0) holds 4/7
        row({0: 0.5, 6: 0.25, 7: 0.25}, 1),  # step 1: nothing on the image
    ] + [row({3: 1.0}, t) for t in range(2, 5)])  # steps 2-4: all on cell (0,1)
    trace = trace_with(rows)
    sinks = np.zeros(len(KINDS), bool)
    sinks[0] = True
    region = [np.array([[True, False], [False, False]])]
    m = step_metrics(trace, 0, key_classes(trace, sinks, region))
    assert m["image_share"][0] == pytest.approx(0.7) and m["sink_share"][0] == pytest.approx(0.2)
    assert m["text_share"][0] == pytest.approx(0.1) and m["answer_share"][1] == pytest.approx(0.25)
    assert m["image_share_nosink"][0] == pytest.approx(0.7 / 0.8)
    p = np.array([4, 1, 1, 1]) / 7
    assert m["image_entropy"][0] == pytest.approx(-(p * np.log(p)).sum() / math.log(4))
    assert m["top_share"][0] == pytest.approx(4 / 7) and m["top_cell"][0] == 0
    assert m["gt_share"][0] == pytest.approx(4 / 7) and m["hit"][0] == 1.0
    assert np.isnan(m["image_entropy"][1]) and np.isnan(m["hit"][1]) and m["image_share"][1] == 0
    assert m["hit"][2] == 0.0 and m["top_share"][2] == 1.0 and m["image_entropy"][2] == pytest.approx(0.0)
    total = m["image_share"] + m["text_share"] + m["answer_share"] + m["sink_share"]
    np.testing.assert_allclose(total, 1.0)


def test_aggregates_are_segment_means_and_position_bins_cover_the_answer():
    rows = np.stack([row({2: 1.0}, t) for t in range(5)])
    trace = trace_with(rows)
    table, _ = metric_rows(trace, [0], key_classes(trace, np.zeros(len(KINDS), bool), None),
                           r"[(](?P<x>\d+),(?P<y>\d+)[)]")
    by = {r["segment"]: r for r in table}
    assert by["all"]["n_tokens"] == 5 and by["all"]["image_share"] == 1.0 and by["all"]["gt_share"] is None
    assert by["coords"]["n_tokens"] == 2  # the tokens "1" and "0"
    assert sum(by[f"pos{b}"]["n_tokens"] for b in range(10) if f"pos{b}" in by) == 5
    steps = segment_steps(trace_with(rows))
    assert [int(s) for s in steps["pos0"]] == [0] and [int(s) for s in steps["pos8"]] == [4]


def test_no_images_no_image_distribution():
    rows = np.stack([row({1: 1.0}, t) for t in range(5)])
    texts = PROMPT + ANSWER
    kinds = ["text"] * len(texts)
    trace = Trace(list(range(len(texts))), texts, kinds, len(PROMPT), rows={0: rows})
    m = step_metrics(trace, 0, key_classes(trace, np.zeros(len(kinds), bool), None))
    assert (m["image_share"] == 0).all() and np.isnan(m["image_entropy"]).all() and (m["top_cell"] == -1).all()


# --- regions on the geometries of the supported families -----------------------------------------------------

QWEN = ImageGeometry(0, 5, 8, 8, 224, 224)  # exact 28-px cells
LLAVA_CROP = ImageGeometry(0, 5, 24, 24, 336, 336, view_box=(80.0, 0.0, 560.0, 480.0))  # 640x480 centre crop
ANYRES = ImageGeometry(0, 5, 2, 3, 56, 84, cell_positions=(30, 31, 32, 34, 35, -1))  # newline tokens between rows


def test_a_point_lights_its_cell_on_each_geometry():
    (qwen,) = point_regions(parse_points("(3,5)"), [QWEN], [(224, 224)], "cells")
    assert np.argwhere(qwen).tolist() == [[5, 3]]
    (norm,) = point_regions(parse_points("(500,500)"), [QWEN], [(640, 480)], "norm1000")
    assert np.argwhere(norm).tolist() == [[4, 4]]
    (crop,) = point_regions(parse_points("[100, 10]"), [LLAVA_CROP], [(640, 480)], "pixels")  # x 100 -> 20 px in
    assert np.argwhere(crop).tolist() == [[0, 1]]  # 20/480·24 = 1.0 -> column 1
    (off,) = point_regions(parse_points("[40, 10]"), [LLAVA_CROP], [(640, 480)], "pixels")  # cut off by the crop
    assert not off.any()
    (tiles,) = point_regions(parse_points("(2,1)"), [ANYRES], [(84, 56)], "cells")
    assert np.argwhere(tiles).tolist() == [[1, 2]]
    (grown,) = point_regions(parse_points("(0,0)"), [QWEN], [(224, 224)], "cells", radius=1)
    assert grown.sum() == 4 and grown[:2, :2].all()


def test_a_box_covers_the_cells_it_overlaps():
    (mask,) = box_regions([Box(0, 30, 30, 80, 60)], [QWEN], [(224, 224)], "pixels")  # x 30-80 -> cols 1-2
    assert np.argwhere(mask.any(axis=0)).ravel().tolist() == [1, 2] and mask.any(axis=1).nonzero()[0].tolist() == [1, 2]
    (cells,) = box_regions([Box(0, 2, 3, 2, 3)], [QWEN], [(224, 224)], "cells")
    assert np.argwhere(cells).tolist() == [[3, 2]]
    assert parse_boxes([1, 2, 3, 4]) == [Box(0, 1, 2, 3, 4)]
    assert parse_boxes([[], [[0, 0, 1, 1]]]) == [Box(1, 0, 0, 1, 1)]
    with pytest.raises(Exception, match="regions field"):
        parse_boxes("somewhere")


def test_points_are_counted_once_the_ground_truth_names_an_image():
    masks = point_regions(parse_points("image 2 (1,1)"), [QWEN, QWEN], [(224, 224)] * 2, "cells")
    assert not masks[0].any() and np.argwhere(masks[1]).tolist() == [[1, 1]]


# --- scorers -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("target", "generated", "truth", "options", "verdict"), [
    ("exact", "<think>…</think><answer> (7,5). </answer>", "(7,5)", {}, True),
    ("exact", "<answer>(7,4)</answer>", "(7,5)", {}, False),
    ("exact", "no tags at all: Paris", "no tags at all: paris", {}, True),
    ("numeric", "<answer>x = 3.14159</answer>", "<answer>3.1416</answer>", {"tolerance": 1e-4}, True),
    ("numeric", "<answer>12</answer>", "13", {}, False),
    ("numeric", "<answer>none</answer>", "13", {}, False),
    ("numeric", "<answer>12</answer>", "no number", {}, None),
    ("choice", "<answer>The answer is (C).</answer>", "C", {}, True),
    ("choice", "<answer>b</answer>", "(B)", {}, True),
    ("choice", "<answer>A</answer>", "B", {}, False),
    ("points", "<answer>[(1,2),(3,4)]</answer>", "[(1,2),(3,5)]", {"distance": 1.0}, True),
    ("points", "<answer>[(1,2)]</answer>", "[(1,2),(3,5)]", {"distance": 1.0}, False),
    ("points", "<answer>image 2 (1,2)</answer>", "image 1 (1,2)", {}, False),
])
def test_scorers(target, generated, truth, options, verdict):
    settings = ScorerConfig(_target_=f"attnviz.scoring.{target}", **options)
    assert score(generated, {"answer": truth}, settings) is verdict


def test_no_ground_truth_is_unknown_and_a_users_function_is_called():
    assert score("<answer>x</answer>", {"id": 1}, ScorerConfig()) is None
    assert score("<answer>x</answer>", {"answer": "y"}, ScorerConfig(key=None)) is None
    settings = ScorerConfig(_target_="tests.test_metrics.always_right")
    assert score("<answer>x</answer>", {"answer": "y"}, settings) is True
    with pytest.raises(Exception, match="not an importable function"):
        score("x", {"answer": "y"}, ScorerConfig(_target_="no.such.function"))
    assert extract_answer("<answer>a</answer> then <answer>b") == "b"


def always_right(prediction: str, truth: str, settings: ScorerConfig) -> bool:
    return True


def test_relative_metrics_divide_by_the_generic_baseline():
    from attnviz.metrics import block_metrics, relative_weights

    weights = np.array([[0.4, 0.4, 0.1, 0.1]])  # the question's cell weights (absolute)
    baseline = np.array([0.8, 0.1, 0.1, 0.0])  # the generic prompt looks at cell 0 anyway, never at cell 3
    q = relative_weights(weights, baseline)
    np.testing.assert_allclose(q, [[0.5 / 5.5, 4 / 5.5, 1 / 5.5, 0.0]])
    rows = np.zeros((1, len(KINDS) - 1))
    rows[0, 2:6] = weights[0]
    trace = trace_with(np.zeros((5, len(KINDS) - 1)))
    region = [np.array([[False, True], [False, False]])]
    out = block_metrics(rows, key_classes(trace, np.zeros(len(KINDS), bool), region), 1, baseline)
    assert out["hit"][0] == 0.0 and out["relative_hit"][0] == 1.0  # absolute ties pick cell 0; relative: cell 1
    assert out["relative_gt_share"][0] == pytest.approx(4 / 5.5)
    assert out["relative_top_share"][0] == pytest.approx(4 / 5.5)
    without = block_metrics(rows, key_classes(trace, np.zeros(len(KINDS), bool), region), 1, None)
    assert np.isnan(without["relative_hit"][0])


def test_layers_measured_together_give_each_layers_own_numbers():
    """A short answer's rows of several layers go through one block: the numbers are each layer's alone."""
    from attnviz.metrics import layer_step_metrics

    rng = np.random.default_rng(0)
    rows = {layer: np.stack([row(dict(enumerate(rng.random(len(PROMPT) + t))), t) for t in range(5)])
            for layer in range(3)}
    texts = PROMPT + ANSWER
    trace = Trace(list(range(len(texts))), texts, KINDS, len(PROMPT), images=[GEOM], rows=rows)
    classes = key_classes(trace, np.zeros(len(KINDS), bool), [np.array([[True, False], [False, False]])])
    together = layer_step_metrics(trace, [2, 0, 1], classes)
    assert list(together) == [2, 0, 1]
    for layer in range(3):
        alone = step_metrics(trace, layer, classes)
        assert set(together[layer]) == set(alone)
        for name, values in alone.items():
            np.testing.assert_array_equal(together[layer][name], values, err_msg=f"layer {layer} {name}")
