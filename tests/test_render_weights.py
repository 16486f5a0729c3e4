"""Weights to colour positions: normalisation modes, sink exclusion, head aggregation (no model)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from attnviz.config import RenderConfig, VideoConfig
from attnviz.errors import AttnvizError
from attnviz.render import aggregate_heads, find_text_start, normalise, scale_of, sink_mask
from attnviz.render.colors import EXCLUDED_RGB
from attnviz.render.frames import FrameRenderer
from attnviz.sinks import excluded_share
from attnviz.trace import Trace
from tests.test_render import GREEN, LAYER, RED, grey_images, make_trace, token_pixels

# --- normalise -------------------------------------------------------------------------------------------


def test_step_mode_is_minmax_then_gamma_after_renormalising():
    w = np.array([1.0, 2.0, 3.0, 6.0])  # renormalised: /12, min-max over 1..6
    np.testing.assert_allclose(normalise(w, "step", gamma=1.0), [0, 0.2, 0.4, 1], atol=1e-6)
    np.testing.assert_allclose(normalise(w, "step", gamma=0.5), np.sqrt([0, 0.2, 0.4, 1]), atol=1e-6)


def test_global_mode_uses_the_fixed_scale():
    rows = [np.array([1.0, 3.0]), np.array([1.0, 1.0, 2.0])]  # renormalised: [.25, .75], [.25, .25, .5]
    lo, hi = scale_of(rows)
    assert (lo, hi) == (0.25, 0.75)
    # the second step's top weight (0.5) sits mid-scale, not at the top as per-step min-max would put it
    np.testing.assert_allclose(normalise(rows[1], "global", gamma=1.0, scale=(lo, hi)), [0, 0, 0.5], atol=1e-6)
    np.testing.assert_allclose(normalise(rows[1], "step", gamma=1.0), [0, 0, 1], atol=1e-6)
    with pytest.raises(ValueError, match="scale"):
        normalise(rows[1], "global")


def test_log_mode_spans_the_given_decades_below_the_maximum():
    w = np.array([1.0, 0.1, 0.01, 0.001, 0.0])
    np.testing.assert_allclose(normalise(w, "log", decades=3.0), [1, 2 / 3, 1 / 3, 0, 0], atol=1e-6)
    np.testing.assert_allclose(normalise(w, "log", decades=2.0), [1, 0.5, 0, 0, 0], atol=1e-6)


def test_degenerate_inputs():
    assert normalise(np.array([5.0, 5.0]), "step").tolist() == [0, 0]  # no range: all low
    assert normalise(np.array([]), "log").size == 0
    assert normalise(np.zeros(3), "log").tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="normalisation"):
        normalise(np.ones(2), "softmax")


# --- sinks -----------------------------------------------------------------------------------------------

CHAT = ["<|im_start|>", "system", "\n", "You", " help", "<|im_end|>", "\n", "<|im_start|>", "user", "\n",
        "<|vision_start|>", "<|image_pad|>", "<|image_pad|>", "<|vision_end|>", " Where", "?", "<|im_end|>", "\n",
        "<|im_start|>", "assistant", "\n", "(", "1", ")"]
KINDS = ["special", "text", "text", "text", "text", "special", "text", "special", "text", "text",
         "special", "image", "image", "special", "text", "text", "special", "text",
         "special", "text", "text", "text", "text", "text"]


def excluded_texts(groups, positions=()):
    mask = sink_mask(CHAT, KINDS, groups, positions)
    return [t for t, m in zip(CHAT, mask, strict=True) if m]


def test_sink_groups():
    assert excluded_texts(["bos"]) == ["<|im_start|>"] and sink_mask(CHAT, KINDS, ["bos"])[0]
    assert excluded_texts(["system"]) == ["<|im_start|>", "system", "\n", "You", " help", "<|im_end|>"]
    assert excluded_texts(["vision_markers"]) == ["<|vision_start|>", "<|vision_end|>"]
    scaffolding = excluded_texts(["chat_template"])
    assert " Where" not in scaffolding and "<|vision_start|>" not in scaffolding and "(" not in scaffolding
    assert scaffolding.count("<|im_start|>") == 3 and scaffolding.count("<|im_end|>") == 2
    assert {"system", "user", "assistant"} <= set(scaffolding) and scaffolding.count("\n") == 5
    assert excluded_texts(["special"]).count("<|image_pad|>") == 0
    assert excluded_texts([], positions=[-1, 14]) == [" Where", ")"]
    with pytest.raises(ValueError, match="sink group"):
        sink_mask(CHAT, KINDS, ["nope"])
    with pytest.raises(ValueError, match="outside"):
        sink_mask(CHAT, KINDS, [], [len(CHAT)])


def test_excluded_share_is_the_rows_mass_on_sinks():
    row = np.array([0.5, 0.25, 0.25])
    assert excluded_share(row, np.array([True, False, False, True])) == 0.5  # mask may be longer than the row


def test_excluded_sinks_do_not_change_the_scale():
    """A huge weight on an excluded token: the other tokens keep exactly the colours they have without it."""
    trace = make_trace(answer=(" Alpha", " Beta", " Gamma"))
    row = trace.rows[LAYER][2]
    row[trace.prompt_len + 1] = 0.9  # " Beta" high, " Based" (and everything else shown) low
    sink = trace.token_texts.index("<|im_end|>")  # shown in the text panel (after "Based on this")
    frames = {}
    for with_sink in (False, True):
        row[sink] = 50.0 if with_sink else 0.0
        r = renderer(trace, exclude=["chat_template"])
        frames[with_sink] = (r, r.render(2))
    (r0, plain), (r1, sunk) = frames[False], frames[True]
    for token, colour in ((" Beta", GREEN), (" Based", RED)):
        np.testing.assert_array_equal(token_pixels(r0, plain, token), token_pixels(r1, sunk, token))
        assert (token_pixels(r1, sunk, token) == colour).all(axis=1).any()
    assert (token_pixels(r1, sunk, "<|im_end|>") == EXCLUDED_RGB).all(axis=1).any()
    assert r1.weigher.at(2).excluded_share > 0.98  # 50 of about 50.9


def test_a_sink_left_in_flattens_everyone_else():
    trace = make_trace(answer=(" Alpha", " Beta", " Gamma"))
    row = trace.rows[LAYER][2]
    row[trace.prompt_len + 1], row[trace.token_texts.index("<|im_end|>")] = 0.9, 50.0
    r = renderer(trace, exclude=[])
    assert not (token_pixels(r, r.render(2), " Beta") == GREEN).all(axis=1).any()  # no longer the top


# --- heads -----------------------------------------------------------------------------------------------


class HeadTrace(Trace):
    """A trace with per-head rows: head h puts all its weight on key h."""

    def head_rows(self, layer: int, step: int) -> np.ndarray:
        k = self.prompt_len + step
        heads = np.zeros((4, k), dtype=np.float32)  # (H, K)
        heads[np.arange(4), np.arange(4) + self.prompt_len - 4] = 1.0
        heads[3] *= 0.5
        return heads


def test_aggregate_heads():
    rows = np.array([[0.2, 0.8], [0.6, 0.4]])
    np.testing.assert_allclose(aggregate_heads(rows, "mean"), [0.4, 0.6])
    np.testing.assert_allclose(aggregate_heads(rows, "max"), [0.6, 0.8])
    np.testing.assert_allclose(aggregate_heads(rows, 1), [0.6, 0.4])
    np.testing.assert_allclose(aggregate_heads(rows, "-1"), [0.6, 0.4])
    with pytest.raises(AttnvizError, match="heads"):
        aggregate_heads(rows, 2)


def test_one_head_and_max_use_per_head_rows():
    base = make_trace(answer=(" Alpha", " Beta"))
    trace = HeadTrace(base.token_ids, base.token_texts, base.token_kinds, base.prompt_len, base.images, base.rows)
    head2 = renderer(trace, heads=2).weigher.source.row(0)
    assert head2.argmax() == trace.prompt_len - 2 and head2.sum() == 1.0
    top = renderer(trace, heads="max").weigher.source.row(0)
    np.testing.assert_allclose(top[trace.prompt_len - 4 :], [1, 1, 1, 0.5])
    with pytest.raises(AttnvizError, match="heads"):
        renderer(trace, heads=7)


def test_heads_other_than_mean_need_per_head_rows():
    with pytest.raises(AttnvizError, match="per-head rows"):
        renderer(make_trace(), heads="max")
    with pytest.raises(AttnvizError, match="render.heads"):
        renderer(make_trace(), heads="median")


def test_global_mode_renders_and_bad_mode_is_an_error():
    trace = make_trace()
    trace.rows[LAYER][:] = np.random.default_rng(0).random(trace.rows[LAYER].shape)
    assert renderer(trace, norm="global").render(3).shape == (360, 640, 3)
    with pytest.raises(AttnvizError, match="render.norm"):
        renderer(trace, norm="zscore")


def renderer(trace, **render) -> FrameRenderer:
    cfg = RenderConfig(font_size=14, **render)
    start, _ = find_text_start(trace, "Based")
    images: list[Image.Image] = grey_images(len(trace.images))
    return FrameRenderer(trace, LAYER, images, cfg, VideoConfig(width=640, height=360), sample_id="s",
                         text_start=start)
