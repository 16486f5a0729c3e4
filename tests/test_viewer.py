"""Viewer page, poster and share plot without a browser: data encoding, escaping, segments, key frames, files."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import logging
import re

import numpy as np
import pytest
from PIL import Image

from attnviz.analysis import answer_segments, first_answer_step, key_frames, kind_shares
from attnviz.config import RenderConfig
from attnviz.trace import Trace
from attnviz.viewer import POSTER_NAME, SHARE_NAME, VIEWER_NAME, build_payload, render_page, write_pictures
from attnviz.viewer.page import asset, self_contained_page
from attnviz.viewer.payload import (
    SINK_FIRST,
    SINK_SPECIAL,
    SINK_SYSTEM,
    PageSettings,
    decode_rows,
    encode_rows,
    pick_layers,
    sink_flags,
)
from tests.viewer_fixture import ANSWER, IMG_TOKEN, PEAK_STEP, SCRIPT_TOKEN, make_images, make_trace, text_start


def _payload(trace: Trace, **kwargs) -> dict:
    settings = PageSettings(layer=trace.layers[-1])
    return build_payload(trace, make_images(trace), settings, sample_id="s<1>", text_start=text_start(trace),
                         title="sample s<1>", **kwargs)


def _data_block(page: str) -> str:
    match = re.search(r'<script type="application/json" id="attnviz-data">(.*?)</script>', page, re.S)
    assert match, "no data block"
    return match.group(1)


def test_rows_round_trip_as_triangular_float16():
    trace = make_trace()
    for layer in trace.layers:
        rows = decode_rows(encode_rows(trace, layer), trace.prompt_len, trace.n_steps)
        assert len(rows) == trace.n_steps
        for t, row in enumerate(rows):
            expected = trace.row(layer, t).astype(np.float16).astype(np.float32)
            np.testing.assert_array_equal(row, expected)


def test_layers_over_the_size_budget_are_left_out_and_logged(caplog):
    trace = make_trace(layers=(0, 1, 2))
    one_layer = len(encode_rows(trace, 0))
    with caplog.at_level(logging.WARNING):
        kept, left_out = pick_layers(trace, first=2, max_bytes=2 * one_layer)
    assert kept == [2, 0] and left_out == [1]
    assert "[1]" in caplog.text
    payload = _payload(trace, max_row_bytes=one_layer)
    assert [entry["layer"] for entry in payload["layers"]] == [2] and payload["left_out_layers"] == [0, 1]


def test_page_escapes_token_text_and_round_trips_the_data():
    trace = make_trace()
    payload = _payload(trace)
    page = render_page(payload)
    assert SCRIPT_TOKEN not in page and IMG_TOKEN not in page
    assert "<img" not in page and "</script>" not in _data_block(page)
    assert page.count("<script") == 2  # the data block and the page's own script, nothing from the data
    assert "<title>sample s&lt;1&gt;</title>" in page
    assert json.loads(_data_block(page)) == payload
    assert json.loads(_data_block(page))["texts"] == trace.token_texts


def test_content_security_policy_names_exactly_the_inline_script_and_style():
    page = render_page(_payload(make_trace()))
    csp = html.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1))
    assert "default-src 'none'" in csp and "connect-src" not in csp  # connections fall back to 'none'
    script = re.search(r"<script>(.*?)</script>", page, re.S).group(1)
    style = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    for text, directive in ((script, "script-src"), (style, "style-src")):
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        assert f"{directive} 'sha256-{digest}'" in csp


def test_a_page_takes_scripts_and_styles_from_other_packages_in_order_under_one_hash():
    """Template from the page's package; a style or script named ``package:file`` or (package, file) from there;
    each kind joined in order, under one hash."""
    names = ("compare.html", ("attnviz.viewer:page.css", "compare.css"),
             ("attnviz.viewer:viewer_core.js", ("attnviz.viewer", "viewer_video.js"), "compare.js"))
    page = self_contained_page("attnviz.compare", names, {"title": "t"}, "t")
    script = re.search(r"<script>(.*?)</script>", page, re.S).group(1)
    style = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    parts = [asset("attnviz.viewer", "viewer_core.js"), asset("attnviz.viewer", "viewer_video.js"),
             asset("attnviz.compare", "compare.js")]
    assert script == "\n".join(parts)
    assert style == asset("attnviz.viewer", "page.css") + "\n" + asset("attnviz.compare", "compare.css")
    assert 'id="diff-scale"' in page  # the comparison's template
    csp = html.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1))
    for text, directive in ((script, "script-src"), (style, "style-src")):
        assert f"{directive} 'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'" in csp
    one = self_contained_page("attnviz.compare", ("compare.html", "compare.css", ()), {"title": "t"}, "t")
    assert re.search(r"<style>(.*?)</style>", one, re.S).group(1) == asset("attnviz.compare", "compare.css")


def test_segments_follow_the_tags_even_when_a_tag_is_split():
    trace = make_trace()
    segments = answer_segments(trace)
    assert [(s.name, s.first, s.last) for s in segments] == [
        ("think", ANSWER.index("<think>"), ANSWER.index("</think>")),
        ("answer", ANSWER.index("<answer>"), ANSWER.index("</answer>")),
    ]
    split = Trace(token_ids=[0] * 6, token_texts=["q", "<th", "ink>x</thi", "nk><ans", "wer>(1", ",2"],
                  token_kinds=["text"] * 6, prompt_len=1)
    assert [(s.name, s.first, s.last) for s in answer_segments(split)] == [("think", 0, 2), ("answer", 2, 4)]


def test_key_frames_are_first_answer_token_peak_and_last_token():
    trace = make_trace()
    layer = trace.layers[-1]
    assert first_answer_step(trace) == ANSWER.index("<answer>") + 1
    frames = dict(key_frames(trace, layer))
    assert frames[first_answer_step(trace)] == "first answer token"
    assert frames[PEAK_STEP] == "strongest image attention"  # the planted one-cell peak wins
    assert "last token" in frames[ANSWER.index("<|im_end|>") - 1]  # the end-of-turn marker is skipped


def test_shares_split_each_row_by_token_kind():
    trace = make_trace()
    shares = kind_shares(trace, 1)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, atol=1e-6)
    kinds = np.array(trace.token_kinds)
    for t in (0, PEAK_STEP, trace.n_steps - 1):
        row = trace.row(1, t).astype(np.float64)
        for k, kind in enumerate(("image", "text", "special")):
            assert shares[t, k] == pytest.approx(row[kinds[: len(row)] == kind].sum() / row.sum())


def test_sink_flags_mark_special_tokens_position_zero_and_the_system_turn():
    trace = make_trace()
    flags = sink_flags(trace)
    special = np.array(trace.token_kinds) == "special"
    # the page's "special" category is the video's special tokens plus the chat template's role headers and turn ends
    scaffolding = {i for i, t in enumerate(trace.token_texts[:-1]) if t in ("system", "user", "assistant", "\n")
                   and trace.token_texts[i - 1] in ("<|im_start|>", "system", "user", "assistant", "<|im_end|>")}
    expected = sorted({*np.flatnonzero(special), *scaffolding})
    np.testing.assert_array_equal(np.flatnonzero(flags & SINK_SPECIAL), expected)
    assert flags[0] & SINK_FIRST and not (flags[1:] & SINK_FIRST).any()
    system_end = trace.token_texts.index("<|im_end|>") + 1  # the system turn ends with the first <|im_end|>
    np.testing.assert_array_equal(np.flatnonzero(flags & SINK_SYSTEM), np.arange(system_end))


def _non_blank(path) -> np.ndarray:
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    assert pixels.std() > 10 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50
    return pixels


def test_write_pictures_writes_page_poster_and_share_plot(tmp_path):
    trace = make_trace()
    frames = [("first", np.full((120, 200, 3), 40, np.uint8)), ("last", np.full((120, 200, 3), 90, np.uint8))]
    files = write_pictures(trace, 3, make_images(trace), RenderConfig(), tmp_path, sample_id="s1",
                           text_start=text_start(trace), key_frames=frames)
    assert files == {"viewer": VIEWER_NAME, "poster": POSTER_NAME, "attention_share": SHARE_NAME}
    poster = _non_blank(tmp_path / POSTER_NAME)
    assert poster.shape[1] == 100 and poster.shape[0] > 2 * 60  # both frames at half size, with captions
    _non_blank(tmp_path / SHARE_NAME)
    payload = json.loads(_data_block((tmp_path / VIEWER_NAME).read_text(encoding="utf-8")))
    assert payload["settings"]["layer"] == 3 and payload["settings"]["colormap"] == "red_green"
    assert not list(tmp_path.glob(".*.tmp"))  # written via temp name + rename


def test_page_starts_with_the_videos_scale_and_sinks():
    from attnviz.viewer import settings_from_render

    render = RenderConfig(norm="log", log_decades=1.5, exclude=["bos", "vision_markers", "chat_template", "system"])
    settings = settings_from_render(render, layer=3)
    assert settings.normalization == "log" and settings.log_decades == 1.5
    trace = make_trace()
    assert build_payload(trace, [], settings, sample_id="s", text_start=0)["settings"]["log_decades"] == 1.5
    assert settings.exclude == ("first", "special", "system")  # the page's categories, each once
    assert settings_from_render(RenderConfig(exclude=[]), layer=2).exclude == ()



def test_key_frame_tap_keeps_copies_of_its_steps_from_a_reused_buffer():
    from attnviz.viewer.poster import KeyFrameTap

    buffer = np.zeros((2, 2, 3), np.uint8)

    def frames():
        for step in range(5):
            buffer[:] = step  # one array redrawn per frame, as the video writer is fed
            yield buffer

    tap = KeyFrameTap([1, 3])
    assert [int(frame[0, 0, 0]) for frame in tap(frames())] == [0, 1, 2, 3, 4]  # passed through unchanged
    assert sorted(tap.kept) == [1, 3]
    assert int(tap.kept[1][0, 0, 0]) == 1 and int(tap.kept[3][0, 0, 0]) == 3  # copies, not the reused buffer


def test_poster_stacks_half_size_frames_under_their_captions():
    from attnviz.render.fonts import find_font
    from attnviz.viewer.poster import GAP, compose_poster

    fonts = find_font(None, 18)
    first = np.zeros((40, 60, 3), np.uint8)
    first[:, 30:] = (200, 0, 0)  # right half red
    second = np.full((40, 60, 3), (0, 0, 120), np.uint8)
    poster = np.asarray(compose_poster([("first answer token", first), ("last token", second)], fonts))
    strip = fonts.line_height + 2 * GAP
    assert poster.shape == (2 * (strip + 20) + GAP, 30, 3)
    top = poster[strip : strip + 20]  # the first frame, halved: 30x20, red from column 15
    assert (top[:, 15:] == (200, 0, 0)).all() and (top[:, :15] == 0).all()
    assert (poster[2 * strip + 20 : 2 * strip + 40] == (0, 0, 120)).all()
    caption = poster[:strip]
    assert (caption != caption[0, 0]).any(axis=-1).sum() > 20  # the caption's text was drawn
    with pytest.raises(ValueError, match="at least one key frame"):
        compose_poster([], fonts)


def test_strongest_image_attention_is_the_largest_single_cell_not_the_largest_total():
    from attnviz.analysis import peak_image_shares
    from attnviz.trace import ImageGeometry

    # one text token, then a 2x2 image at positions 1..4; two steps
    rows = np.array([[0.1, 0.225, 0.225, 0.225, 0.225, 0.0],  # step 0: 90 % on the image, spread evenly
                     [0.4, 0.5, 0.05, 0.0, 0.05, 0.0]])  # step 1: 60 % on the image, 50 % on one cell
    kinds = ["text", "image", "image", "image", "image", "text", "text"]
    trace = Trace(list(range(7)), ["t"] * 7, kinds, 5, images=[ImageGeometry(0, 1, 2, 2, 28, 28)], rows={0: rows})
    assert peak_image_shares(trace, 0) == pytest.approx([0.225, 0.5])
    assert int(np.argmax(peak_image_shares(trace, 0))) == 1  # the total share would have picked step 0
