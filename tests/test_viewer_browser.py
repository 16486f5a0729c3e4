"""viewer.html in a real headless Chromium (the system's, driven by Playwright).

Skipped with a reason when Playwright or Chromium is missing; under CI=true that is a failure instead.
"""

from __future__ import annotations

import dataclasses
import io
import re
from dataclasses import dataclass, field

import numpy as np
import pytest
from PIL import Image

from attnviz.analysis import image_positions
from attnviz.config import RenderConfig
from attnviz.render.colors import colormap_lut, normalise
from attnviz.render.weights import RowSource, Weigher
from attnviz.sinks import sink_mask
from attnviz.viewer import build_payload, settings_from_render, write_page
from attnviz.viewer.screenshot import READY
from tests.viewer_fixture import (
    ANSWER,
    IMAGE_RGB,
    IMG_TOKEN,
    PEAK,
    PEAK_STEP,
    SCRIPT_TOKEN,
    make_images,
    make_trace,
    text_start,
)

ALPHA = RenderConfig().tint_alpha


@dataclass
class Viewer:
    page: object
    url: str
    trace: object
    requests: list = field(default_factory=list)
    console: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    dialogs: list = field(default_factory=list)

    def js(self, expression, arg=None):
        return self.page.evaluate(expression, arg)


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict:
    """layers -> (trace, viewer.html path), each page written once for the module."""
    out = {}
    for layers in ((1, 3), (2,)):
        trace = make_trace(layers=layers)
        # the tests switch sinks on themselves: start from a page with nothing left out of the scale
        settings = dataclasses.replace(settings_from_render(RenderConfig(), layers[-1]), exclude=())
        payload = build_payload(trace, make_images(trace), settings, sample_id="s1", text_start=text_start(trace))
        out[layers] = (trace, write_page(payload, tmp_path_factory.mktemp("viewer")))
    return out


def _open(browser, pages, layers=(1, 3)) -> Viewer:
    trace, path = pages[layers]
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    viewer = Viewer(page, path.as_uri(), trace)
    page.on("request", lambda r: viewer.requests.append(r.url))
    page.on("console", lambda m: viewer.console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: viewer.errors.append(str(e)))
    page.on("dialog", lambda d: (viewer.dialogs.append(d.message), d.dismiss()))
    page.goto(viewer.url)
    page.wait_for_selector(READY, timeout=15_000)
    return viewer


@pytest.fixture()
def viewer(browser, pages):
    v = _open(browser, pages)
    yield v
    v.page.close()


def _current(v: Viewer) -> int:
    return int(v.page.get_attribute(".tok.current", "data-pos"))


def _pixel(v: Viewer, image: int, r: int, c: int) -> np.ndarray:
    """RGB at the centre of cell (r, c) of image ``image``'s canvas."""
    return np.array(v.js("""([i, r, c]) => {
        const g = window.attnviz.data.images[i], cv = document.querySelector(`canvas[data-image="${i}"]`);
        const x = Math.floor((c + 0.5) * cv.width / g.grid_w), y = Math.floor((r + 0.5) * cv.height / g.grid_h);
        return Array.from(cv.getContext("2d").getImageData(x, y, 1, 1).data.slice(0, 3));
    }""", [image, r, c]))


def _canvases(v: Viewer) -> list[str]:
    return v.js("() => Array.from(document.querySelectorAll('canvas'), (c) => c.toDataURL())")


def _step_to(v: Viewer, step: int) -> None:
    v.page.focus("#slider")
    v.page.keyboard.press("Home")
    for _ in range(step):
        v.page.keyboard.press("ArrowRight")


def _tip_weight(v: Viewer) -> float:
    tip = v.page.text_content("#tip")
    return float(re.search(r"weight ([0-9.e+-]+)", tip).group(1))


def _blend(base, color) -> np.ndarray:
    return (1 - ALPHA) * np.asarray(base, float) + ALPHA * np.asarray(color, float)


def test_page_loads_offline_with_no_errors_and_runs_no_token_text(viewer):
    assert viewer.requests == [viewer.url]  # the file itself, nothing else
    assert viewer.console == [] and viewer.errors == [] and viewer.dialogs == []
    assert viewer.js("() => window.__pwned") is None
    assert viewer.js("() => document.querySelectorAll('img').length") == 0
    texts = viewer.js("() => Array.from(document.querySelectorAll('.tok'), (s) => s.textContent)")
    assert SCRIPT_TOKEN in texts and IMG_TOKEN in texts  # shown as text


def test_slider_moves_the_current_token_and_the_heatmap(viewer):
    p = viewer.trace.prompt_len
    assert _current(viewer) == p
    before = _canvases(viewer)
    _step_to(viewer, PEAK_STEP)
    assert _current(viewer) == p + PEAK_STEP
    assert viewer.page.text_content("#step-label") == f"{PEAK_STEP + 1}/{viewer.trace.n_steps}"
    assert viewer.page.text_content("#current-token") == f'"{ANSWER[PEAK_STEP]}"'
    after = _canvases(viewer)
    assert all(a != b for a, b in zip(before, after, strict=True))


def test_heatmap_colours_are_the_video_colours(viewer):
    """Golden pixels: the planted peak is the top of the scale; another cell matches Python's normalisation."""
    _step_to(viewer, PEAK_STEP)
    image, r, c = PEAK
    layer = viewer.trace.layers[-1]
    lut = colormap_lut("red_green")
    np.testing.assert_allclose(_pixel(viewer, image, r, c), _blend(IMAGE_RGB[image], lut[-1]), atol=2)
    row = viewer.trace.row(layer, PEAK_STEP).astype(np.float16).astype(np.float64)
    positions = np.concatenate([np.asarray(g.positions) for g in viewer.trace.images])
    scaled = dict(zip(positions.tolist(), normalise(row[positions], "step", gamma=0.4), strict=True))
    g0 = viewer.trace.images[0]
    expected = lut[int(np.rint(scaled[g0.token_start] * 255))]
    np.testing.assert_allclose(_pixel(viewer, 0, 0, 0), _blend(IMAGE_RGB[0], expected), atol=2)
    viewer.page.select_option("#colormap", "viridis")
    np.testing.assert_allclose(_pixel(viewer, image, r, c), _blend(IMAGE_RGB[image], colormap_lut("viridis")[-1]),
                               atol=2)


def test_hover_shows_weight_and_kind_of_tokens_and_cells(viewer):
    _step_to(viewer, PEAK_STEP)
    row = viewer.trace.row(viewer.trace.layers[-1], PEAK_STEP)
    pos = viewer.trace.token_texts.index(SCRIPT_TOKEN)
    viewer.page.hover(f'.tok[data-pos="{pos}"]')
    assert "kind text" in viewer.page.text_content("#tip")
    assert _tip_weight(viewer) == pytest.approx(float(row[pos]), rel=2e-3)
    image, r, c = PEAK
    g = viewer.trace.images[image]
    box = viewer.page.locator(f'canvas[data-image="{image}"]').bounding_box()
    x, y = box["x"] + (c + 0.5) * box["width"] / g.grid_w, box["y"] + (r + 0.5) * box["height"] / g.grid_h
    viewer.page.mouse.move(x, y)
    assert f"cell row {r}, column {c}" in viewer.page.text_content("#tip")
    assert _tip_weight(viewer) == pytest.approx(float(row[g.token_start + r * g.grid_w + c]), rel=2e-3)


def test_layer_switcher_changes_the_numbers(viewer):
    assert viewer.page.is_visible("#layer-box")
    _step_to(viewer, PEAK_STEP)
    before = _canvases(viewer)
    viewer.page.select_option("#layer", "1")
    assert _canvases(viewer) != before
    pos = text_start(viewer.trace)
    viewer.page.hover(f'.tok[data-pos="{pos}"]')
    assert _tip_weight(viewer) == pytest.approx(float(viewer.trace.row(1, PEAK_STEP)[pos]), rel=2e-3)


def test_single_layer_page_has_no_layer_switcher(browser, pages):
    v = _open(browser, pages, layers=(2,))
    assert not v.page.is_visible("#layer-box") and v.console == []
    v.page.close()


def test_normalisation_modes_match_the_python_reference(viewer):
    row = viewer.trace.row(3, PEAK_STEP).astype(np.float64)
    values = row[text_start(viewer.trace) :]
    js = """([v, mode, gamma, range, decades]) =>
        Array.from(window.attnviz.core.normalize(v, mode, gamma, range, decades))"""
    expected = normalise(values, "step", gamma=0.4)
    np.testing.assert_allclose(viewer.js(js, [values.tolist(), "step", 0.4, None, None]), expected, atol=1e-6)
    decades = viewer.js("() => window.attnviz.data.settings.log_decades")
    assert decades == RenderConfig().log_decades  # the page's decades are the MP4's
    for d in (decades, 1.5):
        np.testing.assert_allclose(viewer.js(js, [values.tolist(), "log", 0.4, None, d]),
                                   normalise(values, "log", decades=d), atol=1e-6)
    positions = np.concatenate([np.asarray(g.positions) for g in viewer.trace.images])
    rows16 = [viewer.trace.row(3, t).astype(np.float16).astype(np.float64) for t in range(viewer.trace.n_steps)]
    renorm = [r[positions] / r[positions].sum() for r in rows16]
    lo, hi = min(r.min() for r in renorm), max(r.max() for r in renorm)
    got = viewer.js("(pos) => window.attnviz.core.globalRange(window.attnviz.rows(), () => pos)", positions.tolist())
    np.testing.assert_allclose(got, [lo, hi], rtol=1e-6)
    expected = ((renorm[0] - lo) / (hi - lo)) ** 0.4
    np.testing.assert_allclose(viewer.js(js, [rows16[0][positions].tolist(), "global", 0.4, got, None]), expected,
                               atol=1e-6)


def _span_rgb(v: Viewer, pos: int) -> tuple[int, ...]:
    color = v.page.eval_on_selector(f'.tok[data-pos="{pos}"]', "s => getComputedStyle(s).color")
    return tuple(int(x) for x in re.findall(r"\d+", color))


def test_log_scale_spans_the_videos_decades(browser, tmp_path):
    """render.log_decades reaches the page: its log colours are the MP4's (its Weigher at those decades, over the
    page's float16 rows), and they differ from the colours at the default decades."""
    trace = make_trace(layers=(3,))
    render = RenderConfig(norm="log", log_decades=1.5, exclude=[])
    payload = build_payload(trace, make_images(trace), settings_from_render(render, 3), sample_id="s1",
                            text_start=text_start(trace))
    v = _open(browser, {(3,): (trace, write_page(payload, tmp_path))}, layers=(3,))
    v.js(f"() => window.attnviz.setStep({PEAK_STEP})")
    as_paged = dataclasses.replace(trace, rows={3: trace.rows[3].astype(np.float16).astype(np.float32)})
    shown = np.array([p for p in range(text_start(trace), len(trace.token_ids)) if trace.token_kinds[p] != "image"])
    lut = colormap_lut(render.colormap)

    def video_colours(decades: float) -> dict[int, np.ndarray]:
        weigher = Weigher(RowSource(as_paged, 3), shown, image_positions(trace.images),
                          np.zeros(len(trace.token_ids), bool), "log", render.gamma, decades)
        text = weigher.at(PEAK_STEP).text  # the shown tokens written before the current one
        return {int(p): lut[int(np.rint(w * 255))] for p, w in zip(shown, text, strict=False)}

    page = {p: _span_rgb(v, p) for p in video_colours(render.log_decades)}
    for p, rgb in video_colours(render.log_decades).items():
        np.testing.assert_allclose(page[p], rgb, atol=3, err_msg=f"position {p}")
    default = video_colours(RenderConfig().log_decades)
    assert sum(np.abs(np.subtract(page[p], rgb)).max() > 20 for p, rgb in default.items()) >= len(default) // 2
    assert v.console == [] and v.errors == []
    v.page.close()


def test_sink_exclusion_leaves_special_tokens_out_of_the_scale(viewer):
    _step_to(viewer, PEAK_STEP)
    trace, layer = viewer.trace, viewer.trace.layers[-1]
    row = trace.row(layer, PEAK_STEP).astype(np.float16).astype(np.float64)
    viewer.page.check("#ex-special")
    # the page's "special" category: special tokens and the chat template's scaffolding (role headers, turn ends)
    flags = sink_mask(trace.token_texts, trace.token_kinds, ["special", "chat_template"], chat=trace.chat_format)
    special = [p for p in range(len(row)) if flags[p]]
    share = re.search(r"([0-9.]+)% of the row", viewer.page.text_content("#excluded")).group(1)
    assert float(share) == pytest.approx(100 * row[special].sum() / row.sum(), abs=0.051)
    shown = [p for p in range(text_start(trace), len(row)) if trace.token_kinds[p] == "text"]
    scaled = normalise(row[shown], "step", gamma=0.4)
    lut = colormap_lut("red_green")
    for p, v in list(zip(shown, scaled, strict=True))[:5]:
        color = viewer.page.eval_on_selector(f'.tok[data-pos="{p}"]', "s => getComputedStyle(s).color")
        assert color == "rgb({}, {}, {})".format(*lut[int(np.rint(v * 255))])
    assert "excluded" in viewer.page.get_attribute(f'.tok[data-pos="{special[-1]}"]', "class")


def test_think_and_answer_segments_are_marked(viewer):
    p = viewer.trace.prompt_len
    for name in ("think", "answer"):
        first, last = ANSWER.index(f"<{name}>"), ANSWER.index(f"</{name}>")
        marked = viewer.js(f"() => Array.from(document.querySelectorAll('.seg-{name}'), (s) => +s.dataset.pos)")
        assert marked == list(range(p + first, p + last + 1))
    _step_to(viewer, ANSWER.index("<answer>") + 1)
    assert viewer.page.text_content("#segment-label") == "<answer>"


def test_play_advances_and_pause_stops(viewer):
    viewer.page.click("#play")
    viewer.page.wait_for_function("() => window.attnviz.state.step >= 2", timeout=5_000)
    viewer.page.click("#play")
    stopped = viewer.js("() => window.attnviz.state.step")
    viewer.page.wait_for_timeout(600)
    assert viewer.js("() => window.attnviz.state.step") == stopped
    assert _current(viewer) == viewer.trace.prompt_len + stopped


def test_screenshot_is_not_blank(viewer):
    _step_to(viewer, PEAK_STEP)
    pixels = np.asarray(Image.open(io.BytesIO(viewer.page.screenshot())).convert("RGB")).astype(np.int64)
    assert pixels.std() > 10
    packed = (pixels[..., 0] << 16) | (pixels[..., 1] << 8) | pixels[..., 2]
    assert len(np.unique(packed)) > 200  # text, heatmap and controls, not a flat fill
