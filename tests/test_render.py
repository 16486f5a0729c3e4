"""Rendering tests on hand-built traces: golden pixels, layout, text start, fonts (no model)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from PIL import Image, ImageFont

from attnviz.config import RenderConfig, VideoConfig
from attnviz.errors import AttnvizError
from attnviz.render import FontSet, FrameRenderer, find_font, find_text_start, frame_count, render_frames
from attnviz.render.colors import CURRENT_TOKEN_RGB, colormap_lut, normalise
from attnviz.render.fonts import font_charset
from attnviz.render.image_panel import cell_edges, coverage, fit_size, tile_boxes
from attnviz.render.text_panel import display_text, layout_tokens
from attnviz.trace import ImageGeometry, Trace

LAYER = 3
GREY = (128, 128, 128)
RED, GREEN = (255, 0, 0), (0, 255, 0)


def make_trace(grids=((2, 3),), question=(" Based", " on", " this"), answer=(" A", "\n", " B", " C")) -> Trace:
    """Chat-shaped trace: user turn with images then question, assistant header, answer; zero rows."""
    texts, kinds, images = ["<|im_start|>", "user", "\n"], ["special", "text", "text"], []
    for i, (gh, gw) in enumerate(grids):
        images.append(ImageGeometry(i, len(texts) + 1, gh, gw, gh * 28, gw * 28))
        texts += ["<|vision_start|>"] + ["<|image_pad|>"] * (gh * gw) + ["<|vision_end|>"]
        kinds += ["special"] + ["image"] * (gh * gw) + ["special"]
    texts += [*question, "<|im_end|>", "\n", "<|im_start|>", "assistant", "\n"]
    kinds += ["text"] * len(question) + ["special", "text", "special", "text", "text"]
    prompt_len = len(texts)
    texts += list(answer)
    kinds += ["text"] * len(answer)
    rows = np.zeros((len(answer), len(texts) - 1), dtype=np.float32)  # (T, S - 1)
    return Trace(list(range(len(texts))), texts, kinds, prompt_len, images, {LAYER: rows})


def grey_images(n: int, size=(120, 90)) -> list[Image.Image]:
    return [Image.new("RGB", size, GREY) for _ in range(n)]


def renderer(trace, images, width=640, height=360, ground_truth=None, **render) -> FrameRenderer:
    cfg = RenderConfig(font_size=render.pop("font_size", 14), **render)
    start, _ = find_text_start(trace, "Based")
    video = VideoConfig(width=width, height=height)
    return FrameRenderer(trace, LAYER, images, cfg, video, sample_id="s0", text_start=start, ground_truth=ground_truth)


def tinted(colour, alpha: float) -> np.ndarray:
    """The documented 8-bit blend: floor(image * (256 - a) / 256) + floor(tint * a / 256), a = round(256 alpha)."""
    a = int(round(alpha * 256))
    return (np.array(GREY) * (256 - a) >> 8) + (np.array(colour) * a >> 8)


def token_pixels(r: FrameRenderer, frame: np.ndarray, token_text: str) -> np.ndarray:
    """(P, 3) frame pixels inside the first drawn piece of the text-panel token with this text (no scrolling)."""
    piece = next(p for p in r.text.pieces if p.text.strip() == token_text.strip())
    x0, y0 = r.text_origin[0] + piece.x, r.text_origin[1] + piece.y
    return frame[y0 : y0 + r.text.line_height, x0 : x0 + piece.w].reshape(-1, 3)


# --- weights and colours ---------------------------------------------------------------------------


def test_normalize_weights_renorm_minmax_gamma():
    np.testing.assert_allclose(normalise(np.array([1.0, 2.0, 3.0]), "step", gamma=0.5), [0, 0.5**0.5, 1], rtol=1e-6)
    assert normalise(np.array([5.0, 5.0]), "step", gamma=0.4).tolist() == [0, 0]  # no range: all low
    assert normalise(np.array([]), "step", gamma=0.4).size == 0


def test_colormaps():
    lut = colormap_lut("red_green")
    assert lut.shape == (256, 3) and tuple(lut[0]) == RED and tuple(lut[-1]) == GREEN
    assert colormap_lut("viridis").shape == (256, 3)
    with pytest.raises(ValueError, match="colormap"):
        colormap_lut("no-such-map")


def test_cell_edges_are_exact_and_cover_the_image():
    np.testing.assert_allclose(cell_edges(3, 10), [0, 10 / 3, 20 / 3, 10])
    cover = coverage(3, 10)  # (10 pixels, 3 cells)
    np.testing.assert_allclose(cover.sum(axis=1), 1.0)  # every pixel fully covered: no strip
    np.testing.assert_allclose(cover.sum(axis=0), 10 / 3)  # every cell exactly a third of the image
    np.testing.assert_allclose(cover[3], [1 / 3, 2 / 3, 0])  # pixel 3 straddles the first edge at 3.33


def test_fit_keeps_aspect_and_tiles_stack_landscape_images():
    assert fit_size(320, 240, 100, 100) == (100, 75)
    boxes = tile_boxes([(400, 300), (400, 300)], 600, 1000, caption_h=20)
    assert [b[0] for b in boxes] == [0, 0] and boxes[1][1] > boxes[0][1]  # one column, stacked


# --- text start ----------------------------------------------------------------------------------------


def test_text_start_phrase_inside_a_token():
    trace = make_trace(question=(" Bas", "ed on", " this"))
    pos, found = find_text_start(trace, "ed on this")
    assert found and trace.token_texts[pos] == "ed on"
    pos, found = find_text_start(trace, "sed on")  # starts inside " Bas"
    assert found and trace.token_texts[pos] == " Bas"


def test_text_start_falls_back_to_last_assistant_turn():
    trace = make_trace()
    assert find_text_start(trace, "not in the text") == (trace.prompt_len, False)
    assert find_text_start(trace, "") == (trace.prompt_len, False)
    no_header = Trace([0, 1, 2], ["hi", " there", "!"], ["text"] * 3, 2)
    assert find_text_start(no_header, "zzz") == (2, False)


# --- layout ----------------------------------------------------------------------------------------------


def test_newline_token_starts_a_new_line():
    fonts = find_font(None, 14)
    pieces, _ = layout_tokens(["ab", "\n", "cd", " e\nf"], fonts, 500)
    where = {p.text: (p.x, p.y) for p in pieces}
    lh = fonts.line_height
    assert where["ab"] == (0, 0) and where["cd"] == (0, lh)
    assert where[" e"][1] == lh and where["f"] == (0, 2 * lh)


def test_words_wrap_whole_at_panel_width():
    fonts = find_font(None, 14)
    char = fonts.text_width("x")
    width = int(12 * char)  # room for 12 monospace characters
    pieces, _ = layout_tokens(["aaaa", " bbbb", " cc", "dd"], fonts, width)  # "ccdd" is one word
    where = {p.text: (p.x, p.y) for p in pieces}
    assert where["aaaa"][1] == where[" bbbb"][1] == 0
    assert where["cc"] == (0, fonts.line_height)  # the leading space is dropped on the wrapped line
    assert where["dd"][1] == fonts.line_height


def test_only_a_token_wider_than_the_panel_is_split():
    fonts = find_font(None, 14)
    width = math.ceil(5 * fonts.text_width("x"))
    pieces, _ = layout_tokens(["ab", "x" * 12], fonts, width)
    assert [p.text for p in pieces] == ["ab", "xxxxx", "xxxxx", "xx"]
    assert all(p.w <= width for p in pieces)


def test_display_text_expands_tabs_and_drops_controls():
    assert display_text("a\tb\r\n\u200d") == "a    b\n"


# --- golden pixels ------------------------------------------------------------------------------------


def test_one_hot_image_token_tints_its_cell_max_and_others_min():
    trace = make_trace(grids=((2, 3), (3, 4)))
    k = 6  # 7th token of image 2 (grid 3 x 4): row 1, column 2
    trace.rows[LAYER][0, trace.images[1].token_start + k] = 1.0
    r = renderer(trace, grey_images(2), grid_lines=False)
    frame = r.render(0)
    alpha = RenderConfig().tint_alpha
    for image, geom in enumerate(trace.images):
        for row in range(geom.grid_h):
            for col in range(geom.grid_w):
                tile = r.image.tiles[image]
                w, h = tile.size
                y = r.image_origin[1] + tile.y + int((row + 0.5) * h / geom.grid_h)
                x = r.image_origin[0] + tile.x + int((col + 0.5) * w / geom.grid_w)
                hot = image == 1 and (row, col) == (k // 4, k % 4)
                np.testing.assert_array_equal(frame[y, x], tinted(GREEN if hot else RED, alpha))


def test_two_images_of_different_grids_are_both_drawn_with_exact_edges():
    trace = make_trace(grids=((2, 3), (5, 7)))
    r = renderer(trace, grey_images(2, (200, 150)))
    assert len(r.image.tiles) == 2
    for tile, geom in zip(r.image.tiles, trace.images, strict=True):
        w, h = tile.size
        assert tile.rows.shape == (h, geom.grid_h) and tile.cols.shape == (w, geom.grid_w)
        np.testing.assert_allclose(tile.rows.sum(axis=0), h / geom.grid_h, rtol=1e-5)  # equal, exact cells
        np.testing.assert_allclose(tile.cols.sum(axis=0), w / geom.grid_w, rtol=1e-5)


def test_current_token_blue_and_earlier_tokens_by_weight():
    trace = make_trace(answer=(" Alpha", " Beta", " Gamma"))
    row = trace.rows[LAYER][2]  # frame of " Gamma": " Beta" high, everything else (" Based") low
    row[trace.prompt_len + 1] = 0.9
    r = renderer(trace, grey_images(1))
    frame = r.render(2)
    assert (token_pixels(r, frame, " Gamma") == CURRENT_TOKEN_RGB).all(axis=1).any()
    assert (token_pixels(r, frame, " Beta") == GREEN).all(axis=1).any()
    assert (token_pixels(r, frame, " Based") == RED).all(axis=1).any()


def test_future_tokens_and_image_tokens_are_not_drawn():
    trace = make_trace(answer=(" Alpha", " Beta"))
    r = renderer(trace, grey_images(1))
    assert "<|image_pad|>" not in r.text.texts
    frame = r.render(0)
    beta = token_pixels(r, frame, " Beta")
    assert (beta == r.static[0, 0]).all()  # background only: " Beta" is not written yet


def test_long_text_scrolls_to_keep_current_token_visible():
    answer = tuple(f" w{i}" for i in range(400))
    trace = make_trace(answer=answer)
    r = renderer(trace, grey_images(1), width=320, height=200)
    frame = r.render(len(answer) - 1)
    x0, y0 = r.text_origin
    view = frame[y0 : y0 + r.text.height, x0 : x0 + r.text.width]
    assert (view == CURRENT_TOKEN_RGB).all(axis=2).sum() > 10


# --- frames and fonts -----------------------------------------------------------------------------------


def test_frame_count_equals_steps_and_frames_are_even_sized():
    trace = make_trace()
    start, _ = find_text_start(trace, "Based")
    frames = render_frames(
        trace,
        LAYER,
        grey_images(1),
        RenderConfig(font_size=12),
        VideoConfig(width=331, height=201),
        sample_id="s",
        text_start=start,
    )
    shapes = [f.shape for f in frames]
    assert len(shapes) == frame_count(trace) == trace.n_steps == 4
    assert set(shapes) == {(200, 330, 3)}


def test_full_hd_frame():
    trace = make_trace(grids=((9, 11), (8, 8)))
    r = renderer(trace, grey_images(2, (320, 240)), width=1920, height=1080, font_size=22)
    frame = r.render(0)
    assert frame.shape == (1080, 1920, 3) and frame.dtype == np.uint8


def test_unknown_layer_is_rejected():
    with pytest.raises(AttnvizError, match="layer"):
        FrameRenderer(make_trace(), 99, [], RenderConfig(), VideoConfig(), sample_id="s", text_start=0)


def test_missing_glyphs_warn_once(caplog):
    trace = make_trace(answer=(" smile \U0001f600", " again \U0001f600", " \U0001f601"))
    with caplog.at_level(logging.WARNING, logger="attnviz.render.fonts"):
        renderer(trace, grey_images(1), font_size=13)  # a size no other test uses: a fresh, unwarned font
        renderer(trace, grey_images(1), font_size=13)  # same font again (next layer): nothing new to say
    warnings = [rec.getMessage() for rec in caplog.records if "cannot draw" in rec.getMessage()]
    assert len(warnings) == 1 and "U+1F600" in warnings[0] and "U+1F601" in warnings[0]


def test_fallback_font_draws_what_the_primary_lacks():
    from matplotlib import font_manager

    base = find_font(None, 14)
    sans = font_manager.findfont("DejaVu Sans")
    fallback = ImageFont.truetype(sans, 14)
    ascii_only = frozenset(range(32, 127))
    fonts = FontSet(base.primary, fallback, ascii_only, font_charset(sans), "test", base.ascent, base.line_height)
    assert fonts.missing_chars("aé") == [] and fonts.font_for("é") is fallback and fonts.font_for("a") is base.primary
    assert fonts.render_mask("é").max() == 255  # drawn, not blank
    alone = FontSet(base.primary, None, ascii_only, None, "test", base.ascent, base.line_height)
    assert alone.missing_chars("a é\u0301") == ["é", "\u0301"]


def test_font_path_must_exist():
    with pytest.raises(AttnvizError, match="font_path"):
        find_font("no/such/font.ttf", 14)
    with pytest.raises(AttnvizError, match="cjk_font_path"):
        find_font(None, 14, "no/such/cjk.otf")


def test_token_taller_than_the_view_is_clipped_to_the_panel():
    tall = "\n".join(["line"] * 40)  # one token spanning more lines than the panel holds
    trace = make_trace(answer=(" x", tall, " end"))
    r = renderer(trace, grey_images(1), width=320, height=200)
    frame = r.render(2)
    x0, y0 = r.text_origin
    np.testing.assert_array_equal(frame[r.header_h : y0], r.static[r.header_h : y0])  # nothing above the panel
    view = frame[y0 : y0 + r.text.height, x0 : x0 + r.text.width]
    assert (view == CURRENT_TOKEN_RGB).all(axis=2).any()


def test_small_video_shrinks_the_font_and_tiny_one_is_refused():
    trace = make_trace()
    r = renderer(trace, grey_images(1), width=320, height=180, font_size=22)
    assert r.fonts.line_height < find_font(None, 22).line_height and r.render(0).shape == (180, 320, 3)
    with pytest.raises(ValueError, match="too small"):
        renderer(trace, grey_images(1), width=80, height=64)
