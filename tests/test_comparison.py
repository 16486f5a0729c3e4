"""attnviz.comparison: layer matching, JS divergence, row differences, the alignment refusal and metric deltas, on
hand-made traces (no model)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from attnviz.comparison import (
    check_aligned,
    compare_keys,
    difference_scales,
    diverging_positions,
    image_distributions,
    js_by_layer,
    js_divergence,
    js_steps,
    layer_pairs,
    mean_js,
    metric_deltas,
    nosink_shares,
    step_difference,
)
from attnviz.errors import AttnvizError
from attnviz.schema import RenderConfig
from tests.viewer_fixture import make_trace, text_start

EXCLUDE = RenderConfig().exclude


def keys_of(trace):
    return compare_keys(trace, text_start(trace), EXCLUDE)


# --- layers -------------------------------------------------------------------------------------------------


def test_equal_depths_pair_layers_by_index():
    assert layer_pairs(4, 4) == ("index", [(0, 0), (1, 1), (2, 2), (3, 3)])


def test_different_depths_pair_layers_by_relative_depth():
    how, pairs = layer_pairs(4, 6)
    assert how == "relative depth"
    assert pairs == [(0, 0), (1, round(5 / 3)), (2, round(10 / 3)), (3, 5)] == [(0, 0), (1, 2), (2, 3), (3, 5)]
    _, deep = layer_pairs(28, 36)
    assert deep[0] == (0, 0) and deep[-1] == (27, 35) and len(deep) == 28
    assert all(b1 < b2 for (_, b1), (_, b2) in zip(deep, deep[1:], strict=False))  # deeper stays deeper


# --- JS divergence -------------------------------------------------------------------------------------------


def test_js_divergence_matches_a_hand_computed_value_in_bits():
    p, q = np.array([0.5, 0.5]), np.array([1.0, 0.0])
    m = np.array([0.75, 0.25])
    expected = 0.5 * (0.5 * math.log2(0.5 / m[0]) + 0.5 * math.log2(0.5 / m[1])) + 0.5 * math.log2(1 / m[0])
    assert js_divergence(p, q) == pytest.approx(expected)  # 0.3113
    assert js_divergence(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)  # disjoint: the maximum


def test_js_divergence_is_symmetric_zero_on_equal_rows_and_nan_without_a_distribution():
    rng = np.random.default_rng(1)
    p, q = rng.dirichlet(np.ones(16), size=5), rng.dirichlet(np.ones(16), size=5)
    np.testing.assert_allclose(js_divergence(p, q), js_divergence(q, p))
    np.testing.assert_allclose(js_divergence(p, p), 0.0, atol=1e-12)
    assert np.all((js_divergence(p, q) > 0) & (js_divergence(p, q) <= 1))
    assert np.isnan(js_divergence(np.full(3, np.nan), np.ones(3) / 3))


def test_image_distributions_sum_to_one_and_identical_traces_diverge_nowhere():
    trace = make_trace(layers=(1, 3))
    dist = image_distributions(trace, 1)
    assert dist.shape == (trace.n_steps, 6 + 8)  # two images: 2x3 and 2x4 cells
    np.testing.assert_allclose(dist.sum(axis=1), 1.0)
    assert js_by_layer(trace, trace, layer_pairs(4, 4)[1]) == {1: 0.0, 3: 0.0}  # only the layers both stored


def test_a_step_without_image_mass_is_left_out_of_the_mean():
    a, b = make_trace(layers=(1,)), make_trace(layers=(1,), seed=5)
    cells = np.concatenate([list(g.positions) for g in a.images])
    for trace in (a, b):
        trace.rows[1][2, cells] = 0.0  # step 2 puts nothing on the images
    steps = js_steps(a, b, 1, 1)
    assert np.isnan(steps[2]) and not np.isnan(np.delete(steps, 2)).any()
    assert mean_js(a, b, 1, 1) == pytest.approx(np.delete(steps, 2).mean())


# --- row differences ------------------------------------------------------------------------------------------


def test_the_difference_is_model_minus_reference_of_the_shares_off_the_sinks():
    ref, model = make_trace(layers=(1,)), make_trace(layers=(1,), seed=3)
    keys = keys_of(ref)
    step = 4
    d = step_difference(ref, model, 1, 1, keys.sinks, step)
    assert d.shape == (ref.prompt_len + step,)

    def shares(trace):
        row = trace.row(1, step).astype(np.float64)
        return row / row[~keys.sinks[: len(row)]].sum()

    kept = ~keys.sinks[: len(d)]
    np.testing.assert_allclose(d[kept], (shares(model) - shares(ref))[kept], atol=1e-6)
    assert np.isnan(d[~kept]).all() and (~kept).any()  # sinks: no difference drawn
    np.testing.assert_allclose(np.nansum(nosink_shares(ref.rows[1][:1], keys.sinks)), 1.0)


def test_the_symmetric_scale_is_the_largest_difference_over_all_steps_and_zero_for_a_model_and_itself():
    ref, model = make_trace(layers=(1,)), make_trace(layers=(1,), seed=3)
    keys = keys_of(ref)
    text_s, image_s = difference_scales(ref, model, 1, 1, keys, block=3)  # blocks: the same as one pass
    all_d = np.stack([np.pad(step_difference(ref, model, 1, 1, keys.sinks, t), (0, ref.n_steps - t))
                      for t in range(ref.n_steps)])
    width = all_d.shape[1]
    assert text_s == pytest.approx(np.nanmax(np.abs(all_d[:, keys.text[keys.text < width]])), rel=1e-6)
    assert image_s == pytest.approx(np.nanmax(np.abs(all_d[:, keys.image])), rel=1e-6)
    assert difference_scales(ref, ref, 1, 1, keys) == (0.0, 0.0)


def test_diverging_positions_put_zero_at_the_middle_and_the_scale_at_the_ends():
    pos = diverging_positions(np.array([0.0, 0.2, -0.2, 0.5, np.nan, 0.05]), 0.2, gamma=1.0)
    np.testing.assert_allclose(pos[:4], [0.5, 1.0, 0.0, 1.0])  # beyond the scale: clipped
    assert np.isnan(pos[4]) and pos[5] == pytest.approx(0.625)
    assert diverging_positions(np.array([0.05]), 0.2, gamma=0.5)[0] == pytest.approx(0.5 + 0.5 * 0.25**0.5)
    np.testing.assert_allclose(diverging_positions(np.zeros(3), 0.0), 0.5)  # models that agree: all neutral


# --- token alignment ------------------------------------------------------------------------------------------


def test_aligned_traces_pass_the_check():
    check_aligned(make_trace(), make_trace(seed=2), "base", "rl")  # same tokens and geometry, other rows


@pytest.mark.parametrize("change, words", [
    ("geometry", ["image 1 at different sizes", "model.min_pixels/max_pixels"]),
    ("answer", ["different answers", "answer step 6", "compare.answer"]),
    ("prompt", ["different prompts", "position 3"]),
])
def test_misaligned_traces_are_refused_in_one_line_naming_both_models(change, words):
    ref, other = make_trace(), make_trace()
    if change == "geometry":
        g = other.images[0]
        other.images[0] = dataclasses.replace(g, pixel_w=2 * g.pixel_w, pixel_h=2 * g.pixel_h)
    elif change == "answer":
        other.token_ids[other.prompt_len + 6] += 1000
    else:
        other.token_ids[3] += 1000
    with pytest.raises(AttnvizError) as err:
        check_aligned(ref, other, "base", "sft")
    message = str(err.value)
    assert "\n" not in message and "'base'" in message and "'sft'" in message
    assert all(w in message for w in words), message


def test_a_different_number_of_images_is_named():
    ref, other = make_trace(), make_trace()
    other.images = other.images[:1]
    with pytest.raises(AttnvizError, match="2 vs 1 images"):
        check_aligned(ref, other, "a", "b")


# --- metric deltas -----------------------------------------------------------------------------------------------


def _metrics(rows):
    return {"format": 1, "rows": [{"layer": ly, "segment": seg, "n_tokens": 5, **values} for ly, seg, values in rows]}


def test_metric_deltas_are_model_minus_reference_with_none_where_a_value_is_missing():
    ref = _metrics([(3, "all", {"image_share": 0.5, "gt_share": None, "hit": 1.0, "image_shares": [0.5]}),
                    (3, "answer", {"image_share": 0.75, "gt_share": 0.5, "hit": 1.0, "image_shares": [0.75]}),
                    (1, "all", {"image_share": 0.1})])
    model = _metrics([(3, "all", {"image_share": 0.25, "gt_share": 0.2, "hit": 0.0, "image_shares": [0.25]}),
                      (3, "answer", {"image_share": 0.5, "gt_share": 0.25, "image_shares": [0.5]})])
    deltas = metric_deltas(ref, model, [(1, 1), (3, 3)])
    assert list(deltas) == [3]  # the model has no layer 1
    assert deltas[3]["all"] == {"image_share": -0.25, "gt_share": None, "hit": -1.0}  # lists left out
    assert deltas[3]["answer"] == {"image_share": -0.25, "gt_share": -0.25, "hit": None}


def test_metric_deltas_follow_the_layer_pairs():
    ref = _metrics([(2, "all", {"image_share": 0.5})])
    model = _metrics([(3, "all", {"image_share": 0.75}), (2, "all", {"image_share": 0.0})])
    assert metric_deltas(ref, model, [(2, 3)]) == {2: {"all": {"image_share": 0.25}}}
    assert metric_deltas(ref, {}, [(2, 3)]) == {}
