"""Whatever text a model writes, the render finishes: the text panel, the header line, the poster caption, the
viewer page and the share plot over arbitrary token strings (controls, separators, lone surrogates, RTL, marks,
emoji, very long tokens). Characters the text shaper cannot lay out are drawn as visible escapes."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFont

from attnviz.config import RenderConfig, VideoConfig
from attnviz.render import FrameRenderer, render_frames
from attnviz.render.fonts import UNDRAWABLE, FontSet, drawable, escaped_all, find_font
from attnviz.render.header import frame_line
from attnviz.render.text_panel import TextPanel, display_text, layout_tokens
from attnviz.trace import ImageGeometry, Trace
from attnviz.viewer.page import render_page, write_page
from attnviz.viewer.payload import PageSettings, build_payload
from attnviz.viewer.poster import compose_poster
from attnviz.viewer.share_plot import write_share_plot

RAQM_FAILS = ["\n", "\r", "\x1c", "\x1d", "\x1e", "\x85", "\u2029"]  # every code point raqm 0.11 cannot lay out
HOSTILE = [
    *RAQM_FAILS, "\x1f", "\u2028", "\x00", "a\x00b", "\x7f", "\t", "\r\n", "\ud800", "\udfff", "x\udc80y",
    "مرحبا", "שלום world", "e\u0301", "\u0301", "\u200b", "\u200d", "\ufeff", "\u202e", "\u2066x\u2069",
    "👩\u200d💻", "🇫🇷", "\U000e0001", "\ufffe", "\uffff", "\ue000", "中文", "a" * 500, "", " ", "  ",
    "</script><b>&amp;", "$x^2$", "\\x1c",
]
ALL_CHARS = st.characters(exclude_categories=())  # every category: Cc, Cf, Cs (lone surrogates), Zl, Zp, Co, Cn
ODD_CHARS = st.characters(categories=["Cc", "Cf", "Cs", "Zl", "Zp", "Mn", "Co", "Cn"])  # rare in ALL_CHARS
TOKEN = st.text(ALL_CHARS, max_size=12) | st.text(ODD_CHARS, max_size=6) | st.sampled_from(HOSTILE)
TOKENS = st.lists(TOKEN, min_size=1, max_size=12)
FUZZ = settings(max_examples=120, deadline=None)
LAYER = 0


def fonts14() -> FontSet:
    return find_font(None, 14)


def with_fallback() -> FontSet:
    """The mono font for ASCII only and DejaVu Sans for the rest: text split into runs of two fonts."""
    from matplotlib import font_manager

    from attnviz.render.fonts import font_charset

    base, sans = fonts14(), font_manager.findfont("DejaVu Sans")
    fallback = ImageFont.truetype(sans, 14)
    ascii_only = frozenset(range(32, 127))
    return FontSet(base.primary, fallback, ascii_only, font_charset(sans), "mixed", base.ascent, base.line_height)


def hostile_trace(answer: list[str], with_image: bool = True) -> Trace:
    """A chat-shaped trace (image, question, assistant header) whose answer tokens are ``answer``; uniform rows."""
    texts, kinds, images = ["<|im_start|>", "user", "\n"], ["special", "text", "text"], []
    if with_image:
        images.append(ImageGeometry(0, len(texts) + 1, 2, 2, 56, 56))
        texts += ["<|vision_start|>"] + ["<|image_pad|>"] * 4 + ["<|vision_end|>"]
        kinds += ["special"] + ["image"] * 4 + ["special"]
    texts += [" Based", " on", "<|im_end|>", "\n", "<|im_start|>", "assistant", "\n"]
    kinds += ["text", "text", "special", "text", "special", "text", "text"]
    prompt_len = len(texts)
    texts += list(answer)
    kinds += ["text"] * len(answer)
    rows = np.zeros((len(answer), len(texts) - 1), dtype=np.float32)  # (T, S - 1)
    for t in range(len(answer)):
        rows[t, : prompt_len + t] = 1.0 / (prompt_len + t)
    return Trace(list(range(len(texts))), texts, kinds, prompt_len, images, {LAYER: rows})


MIXED = with_fallback()


# --- the sanitiser ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ch", RAQM_FAILS)
def test_what_raqm_cannot_lay_out_is_drawn_as_an_escape(ch):
    fonts = fonts14()
    assert drawable(ch) == ch.encode("unicode_escape").decode("ascii")
    assert fonts.text_width(ch) == fonts.text_width(drawable(ch)) > 0
    assert np.array_equal(fonts.render_mask(ch), fonts.render_mask(drawable(ch)))  # the escape, visibly


def test_ordinary_text_is_passed_through_untouched():
    text = "the quick brown fox · 中文 · مرحبا · e\u0301"
    assert drawable(text) is text  # the fast path: no copy
    assert drawable("\x1c") == "\\x1c" and drawable("\u2029") == "\\u2029" and drawable("\ud800") == "\\ud800"
    assert drawable("a\tb\nc") == "a\\tb\\nc"


@FUZZ
@given(text=TOKEN)
def test_any_text_is_measured_and_drawn(text):
    shown = drawable(text)
    assert not UNDRAWABLE.search(shown)
    shown.encode("utf-8")  # no lone surrogate left
    for fonts in (fonts14(), MIXED):
        width = fonts.text_width(text)
        assert np.isfinite(width) and width >= 0
        mask = fonts.render_mask(text)
        assert mask.shape[0] == fonts.line_height and mask.dtype == np.uint8


def test_text_pillow_rejects_is_drawn_fully_escaped(caplog):
    class Picky(ImageFont.FreeTypeFont):
        """A font whose layout fails on any non-ASCII text, as raqm does on its separators."""

        def getlength(self, text, *args, **kwargs):
            if not text.isascii():
                raise RuntimeError("raqm_layout() failed.")
            return super().getlength(text, *args, **kwargs)

    base = fonts14()
    fonts = FontSet(Picky(base.primary.path, 14), None, None, None, "picky", base.ascent, base.line_height)
    with caplog.at_level(logging.WARNING, logger="attnviz.render.fonts"):
        for text in ("مرحبا", "é", "مرحبا"):
            assert fonts.text_width(text) == fonts.text_width(escaped_all(text)) > 0
            assert fonts.render_mask(text).max() > 0
    warnings = [r.getMessage() for r in caplog.records if "could not lay out" in r.getMessage()]
    assert len(warnings) == 1 and "\\u0645" in warnings[0]


# --- the text panel and the header ---------------------------------------------------------------------------


@FUZZ
@given(texts=TOKENS)
@example(texts=HOSTILE)
def test_text_panel_lays_out_and_paints_any_tokens(texts):
    fonts = MIXED if len(texts) % 2 else fonts14()  # one font, or runs of two
    panel = TextPanel(texts, fonts, 200, 120)
    shown = [display_text(t) for t in texts]
    pieces, anchors = layout_tokens(shown, fonts, 200)
    assert len(anchors) == len(texts)
    for i, text in enumerate(shown):  # every token with something to draw has a piece on the panel
        if any(ch not in " \n" for ch in text):
            assert panel.token_pieces[i], (i, ascii(texts[i]))
    assert all(0 <= p.x <= 200 and p.w >= 0 for p in pieces)
    frame = np.zeros((160, 240, 3), dtype=np.uint8)
    colors = np.full((len(texts), 3), 200, dtype=np.uint8)
    panel.paint(frame, (20, 20), colors, len(texts) - 1, mark_current=True)


def test_panel_keeps_controls_as_escapes_and_drops_invisible_formats():
    assert display_text("a\tb\r\n\u200d") == "a    b\n"  # unchanged behaviour
    assert display_text("x\u2029y\u2028z") == "x\ny\nz"
    assert display_text("\x1c\x00\x85") == "\x1c\x00\x85"  # kept: FontSet draws them as \x1c \x00 \x85
    assert display_text("\ud800") == "\ud800"
    fonts = fonts14()
    panel = TextPanel(["a", "\x1c", "b"], fonts, 200, 120)
    (piece,) = panel.token_pieces[1]
    assert piece.w == np.ceil(fonts.text_width("\\x1c"))


@FUZZ
@given(token=TOKEN, sample_id=TOKEN)
@example(token="\x1c", sample_id="s0")
@example(token="a" * 500, sample_id="\u2029" * 50)
def test_header_line_draws_any_token(token, sample_id):
    fonts = fonts14()
    for width in (160, 900):  # the short and the long form
        strip = frame_line(fonts, width, sample_id=sample_id, layer=3, step=0, total=7, token=token, sinks=0.25)
        assert strip.shape == (fonts.line_height, width, 3)


def test_header_shows_the_escape_of_a_control_token():
    fonts = fonts14()
    line = dict(sample_id="s0", layer=3, step=0, total=7)
    for ch in ("\x1c", "\u2029", "\ud800", "\x00"):
        drawn = frame_line(fonts, 600, token=ch, **line)
        assert np.array_equal(drawn, frame_line(fonts, 600, token=drawable(ch), **line)), ascii(ch)
        assert not np.array_equal(drawn, frame_line(fonts, 600, token="", **line))


# --- whole renders ---------------------------------------------------------------------------------------------

ANSWER = ["Hi", "\x1c", " there", "\u2029", "\ud800", " مرحبا", " e\u0301", " 👩\u200d💻", " " + "a" * 500, "\x00",
          "\u200b", "\x85", " end"]


def test_render_frames_draws_every_frame_of_hostile_tokens():
    trace = hostile_trace(ANSWER)
    cfg, video = RenderConfig(font_size=14), VideoConfig(width=320, height=180)
    images = [Image.new("RGB", (56, 56), (128, 128, 128))]
    frames = list(render_frames(trace, LAYER, images, cfg, video, sample_id="s\x1c0", text_start=trace.prompt_len))
    assert len(frames) == len(ANSWER) and all(f.shape == (180, 320, 3) for f in frames)
    assert "x1c" in drawable("\x1c") and "u2029" in drawable("\u2029") and "ud800" in drawable("\ud800")
    r = FrameRenderer(trace, LAYER, images, cfg, video, sample_id="s0", text_start=trace.prompt_len)
    control = r.text.token_pieces[ANSWER.index("\x1c")]
    assert [p.text for p in control] == ["\x1c"] and control[0].w == np.ceil(r.fonts.text_width("\\x1c"))
    assert len(r.text.token_pieces[ANSWER.index(" " + "a" * 500)]) > 1  # the long token wraps over lines


def test_cannot_be_drawn_warning_is_logged_once(caplog):
    size = 17  # a size no other test uses; its shared FontSet is reset so this test sees the first warning
    fonts = find_font(None, size)
    fonts.warned.clear()
    trace = hostile_trace(ANSWER)
    cfg, video = RenderConfig(font_size=size), VideoConfig(width=640, height=360)
    with caplog.at_level(logging.WARNING, logger="attnviz.render.fonts"):
        for _ in range(2):  # a second layer's video: nothing new to say
            for _frame in render_frames(trace, LAYER, [], cfg, video, sample_id="s0", text_start=trace.prompt_len):
                pass
    warnings = [r.getMessage() for r in caplog.records if "cannot be drawn" in r.getMessage()]
    assert len(warnings) == 1, warnings
    for name in ("\\x1c (U+001C)", "\\ud800 (U+D800)", "\\x00 (U+0000)", "\\x85 (U+0085)"):
        assert name in warnings[0]
    warnings[0].encode("utf-8")  # the message itself holds no lone surrogate


# --- poster, viewer page, share plot ---------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(caption=TOKEN)
@example(caption="first answer token \x1c\u2029\ud800 · step 1 of 3")
def test_poster_caption_draws_any_text(caption):
    poster = compose_poster([(caption, np.zeros((40, 60, 3), dtype=np.uint8))], find_font(None, 18))
    assert poster.width == 30 and poster.height > 20


def _data_block(page: str) -> str:
    match = re.search(r'<script type="application/json" id="attnviz-data">(.*?)</script>', page, re.S)
    assert match, "no data block"
    return match.group(1)


@settings(max_examples=40, deadline=None)
@given(answer=TOKENS)
@example(answer=HOSTILE)
def test_viewer_page_round_trips_any_token_texts(answer):
    trace = hostile_trace(answer, with_image=False)
    payload = build_payload(trace, [], PageSettings(layer=LAYER), sample_id="s0", text_start=trace.prompt_len)
    data = _data_block(render_page(payload))
    assert json.loads(data)["texts"] == trace.token_texts
    # what an HTML parser would change in a script block (CR normalised, NUL replaced) or end it early is escaped
    assert not re.search("[\r\x00<>&]", data)


def test_written_page_round_trips_token_texts(tmp_path):
    answer = [t for t in HOSTILE if not re.search("[\ud800-\udfff]", t)]
    trace = hostile_trace(answer, with_image=False)
    payload = build_payload(trace, [], PageSettings(layer=LAYER), sample_id="s0", text_start=trace.prompt_len)
    page = write_page(payload, tmp_path).read_text(encoding="utf-8")
    assert json.loads(_data_block(page))["texts"] == trace.token_texts


def test_written_page_keeps_a_lone_surrogate_token(tmp_path):
    trace = hostile_trace(["a", "\ud800", "b"], with_image=False)
    payload = build_payload(trace, [], PageSettings(layer=LAYER), sample_id="s0", text_start=trace.prompt_len)
    page = write_page(payload, tmp_path).read_text(encoding="utf-8")
    assert json.loads(_data_block(page))["texts"] == trace.token_texts  # the escape reads back as the same text


@pytest.mark.filterwarnings("ignore:Glyph .* missing from font")  # boxes for glyphs the font lacks: no error
def test_share_plot_labels_hostile_tokens(tmp_path):
    path = write_share_plot(hostile_trace(HOSTILE), LAYER, tmp_path / "share.png")
    assert path.stat().st_size > 0


def test_share_plot_labels_a_lone_surrogate_token(tmp_path):
    write_share_plot(hostile_trace(["a", "\ud800", "b"]), LAYER, tmp_path / "share.png")
