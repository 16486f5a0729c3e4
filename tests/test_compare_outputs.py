"""One sample compared across checkpoints: compare.json, compare_layer{L}.mp4 and compare.html, from two real demo
runs (the taught demo model and its untaught twin replaying the same answer), and the page in Chromium."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from attnviz.analysis import row_blocks
from attnviz.compare.page import PageModel, build_compare_payload, row_keys, write_compare_page
from attnviz.compare.sample import compare_sample
from attnviz.comparison import compare_keys, diverging_positions, nosink_shares, step_difference
from attnviz.errors import AttnvizError
from attnviz.metadata import COMPLETE, ModelInfo, RunMetadata
from attnviz.render.colors import colormap_lut
from attnviz.render.weights import RowSource, Weigher
from attnviz.rerender import save_inputs
from attnviz.schema import RenderConfig, VideoConfig
from attnviz.trace import load_trace, prune_trace, save_trace
from attnviz.viewer.screenshot import READY
from tests.conftest import CONF_DIR
from tests.viewer_fixture import IMG_TOKEN, PEAK, PEAK_STEP, SCRIPT_TOKEN, make_images, make_trace, text_start

LABELS = ["demo", "demo_untaught"]
REPLAY = ("mode=replay", "capture.replay_key=solution", "capture.layers=all", "video.width=320", "video.height=180")
VIDEO = VideoConfig(width=640, height=360, crf=30)
FORMAT_KEYS = {"format", "kind", "sample_id", "answer", "token_aligned", "reference", "models", "comparisons", "files"}


@pytest.fixture(scope="session")
def demo_runs(tmp_path_factory):
    """(run dirs by label, the composed settings): sample 0 replayed by the demo model and its untaught twin."""
    from hydra import compose, initialize_config_dir

    from attnviz.app import run
    from attnviz.config import typed

    root = tmp_path_factory.mktemp("compare_runs")
    dirs, app = {}, None
    for label, extra in zip(LABELS, ([], ["model=demo_untaught"]), strict=True):
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
            cfg = compose("config", overrides=[f"output_dir={root / label}", *REPLAY, *extra])
        run(cfg)
        dirs[label], app = root / label, typed(cfg)
    return dirs, app


def _compare(demo_runs, out: Path, runs=None, labels=LABELS, **kwargs):
    dirs, app = demo_runs
    settings = {"answer": "pred", "layer": 3, "render": app.render, "video": None, "start_phrase": app.start_phrase,
                "token_aligned": True, **kwargs}
    return compare_sample(runs or [dirs[label] for label in labels], labels, out, **settings)


@pytest.fixture(scope="module")
def compared(demo_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("compared") / "samples" / "demo_000"
    return out, _compare(demo_runs, out, video=VIDEO)


def page_payload(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    block = re.search(r'<script type="application/json" id="attnviz-data">(.*?)</script>', text, re.S).group(1)
    return json.loads(block)


def test_compare_json_has_the_documented_format(compared, demo_runs):
    out, data = compared
    assert json.loads((out / "compare.json").read_text()) == data
    assert set(data) == FORMAT_KEYS and data["format"] == 1 and data["kind"] == "compare_sample"
    assert (data["sample_id"], data["answer"], data["token_aligned"], data["reference"]) == \
        ("demo_000", "pred", True, "demo")
    assert [m["label"] for m in data["models"]] == LABELS
    for m in data["models"]:
        assert (out / m["run_dir"]).resolve() == demo_runs[0][m["label"]].resolve()
        assert m["num_layers"] == 4 and m["correct"] is True
    (entry,) = data["comparisons"]
    assert entry["model"] == "demo_untaught" and entry["layer_match"] == "index"
    assert entry["layers"] == [[0, 0], [1, 1], [2, 2], [3, 3]]
    assert set(entry["js_divergence"]) == {"0", "1", "2", "3"}  # every layer both stored
    assert all(0 < v < 1 for v in entry["js_divergence"].values())
    assert set(entry["deltas"]) == {"0", "1", "2", "3"}
    assert {"all", "think", "answer", "coords"} <= set(entry["deltas"]["3"])
    assert data["files"] == {"viewer": "compare.html", "videos": {"3": "compare_layer3.mp4"}}
    assert not list(out.glob(".*"))  # written under temp names, then renamed: nothing left behind


def test_the_untaught_twin_looks_less_at_the_marker_at_the_taught_layer(compared):
    deltas = compared[1]["comparisons"][0]["deltas"]["3"]
    assert deltas["coords"]["gt_share"] < -0.3 and deltas["coords"]["image_share"] is not None
    assert deltas["answer"]["relative_gt_share"] is None  # no baseline: unknown, not zero


def test_the_video_has_one_frame_per_answer_step(compared, demo_runs):
    out, _ = compared
    reader = imageio_ffmpeg.read_frames(str(out / "compare_layer3.mp4"))
    meta = next(reader)
    frames = sum(1 for _ in reader)
    assert tuple(meta["size"]) == (640, 360)
    assert frames == load_trace(demo_runs[0]["demo"]).n_steps == 21


def test_the_page_embeds_both_models_rows_as_shares_off_the_sinks(compared, demo_runs):
    out, _ = compared
    payload = page_payload(out / "compare.html")
    assert [m["label"] for m in payload["models"]] == LABELS
    assert payload["layers"] == [0, 1, 2, 3] and payload["settings"]["layer"] == 3
    assert payload["models"][0]["js"] is None and len(payload["models"][1]["js"]) == 4
    trace = load_trace(demo_runs[0]["demo_untaught"])
    _, app = demo_runs
    keys = compare_keys(trace, payload["text_start"], app.render.exclude, app.render.exclude_positions)
    positions = np.asarray(payload["keys"])
    np.testing.assert_array_equal(positions, row_keys(keys, trace))
    flat = np.frombuffer(base64.b64decode(payload["models"][1]["rows"][3]), "<f2").astype(np.float64)
    counts = np.searchsorted(positions, trace.prompt_len + np.arange(trace.n_steps))
    assert flat.size == counts.sum()
    step = 17
    start = counts[:step].sum()
    (_, rows), = list(row_blocks(trace, 3))
    expected = np.nan_to_num(nosink_shares(rows[step : step + 1], keys.sinks)[0, positions[: counts[step]]])
    np.testing.assert_allclose(flat[start : start + counts[step]], expected, atol=2e-3)
    assert len(payload["texts"]) == len(payload["text_keys"])


def test_a_model_compared_with_itself_differs_nowhere(demo_runs, tmp_path):
    dirs, _ = demo_runs
    data = _compare(demo_runs, tmp_path, runs=[dirs["demo"], dirs["demo"]], labels=["a", "b"])
    (entry,) = data["comparisons"]
    assert entry["js_divergence"] == {"0": 0.0, "1": 0.0, "2": 0.0, "3": 0.0}
    values = [v for seg in entry["deltas"].values() for row in seg.values() for v in row.values()]
    assert values and all(v is None or v == 0 for v in values)
    assert data["files"] == {"viewer": "compare.html", "videos": {}}  # video None: no MP4
    assert not list(tmp_path.glob("*.mp4"))


def test_answers_not_token_aligned_compare_only_the_metrics(demo_runs, tmp_path):
    data = _compare(demo_runs, tmp_path, video=VIDEO, token_aligned=False)
    (entry,) = data["comparisons"]
    assert entry["js_divergence"] == {} and set(entry["deltas"]) == {"0", "1", "2", "3"}
    assert data["token_aligned"] is False and data["files"] == {"viewer": None, "videos": {}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compare.json"]


def test_runs_that_read_different_answers_are_refused_in_one_line(demo_runs, tmp_path):
    dirs, _ = demo_runs
    other = shutil.copytree(dirs["demo_untaught"], tmp_path / "other")
    header_path = other / "trace" / "trace.json"
    header = json.loads(header_path.read_text())
    header["token_ids"][-3] = header["token_ids"][-4]  # one answer token changed
    header_path.write_text(json.dumps(header))
    with pytest.raises(AttnvizError) as err:
        _compare(demo_runs, tmp_path / "out", runs=[dirs["demo"], other])
    message = str(err.value)
    assert "\n" not in message and "'demo'" in message and "'demo_untaught'" in message
    assert "different answers" in message and "answer step 18" in message
    assert not (tmp_path / "out" / "compare.json").exists()


def test_a_video_layer_a_model_did_not_store_is_named(demo_runs, tmp_path):
    dirs, _ = demo_runs
    other = shutil.copytree(dirs["demo_untaught"], tmp_path / "other")
    prune_trace(other / "trace", keep=[0, 1, 2])
    with pytest.raises(AttnvizError, match="'demo_untaught' holds no rows of its layer 3 .*stored: \\[0, 1, 2\\]"):
        _compare(demo_runs, tmp_path / "out", runs=[dirs["demo"], other], video=VIDEO)


def _synthetic_run(folder: Path, layers, num_layers: int, seed: int) -> Path:
    """A finished run directory written without a model (trace, input images, metadata; no metrics)."""
    trace = make_trace(layers=layers, seed=seed)
    save_trace(trace, folder / "trace", "float16")
    save_inputs(make_images(trace), folder / "trace")
    model = ModelInfo(path="ckpt", family="Qwen2-VL", device="cpu", dtype="float32", num_layers=num_layers)
    RunMetadata(status=COMPLETE, model=model, sample={"id": "s1"}, layer=layers[-1]).save(folder)
    return folder


def test_models_of_different_depths_are_matched_by_relative_depth(tmp_path):
    ref = _synthetic_run(tmp_path / "base", (1, 3), 4, seed=0)
    deep = _synthetic_run(tmp_path / "deep", (2, 5), 6, seed=1)  # 4 -> 6 layers: 1 -> 2, 3 -> 5
    data = compare_sample([ref, deep], ["base", "deep"], tmp_path / "out", answer="pred", layer=3,
                          render=RenderConfig(), video=VIDEO, start_phrase="Where", token_aligned=True)
    (entry,) = data["comparisons"]
    assert entry["layer_match"] == "relative depth" and entry["layers"] == [[0, 0], [1, 2], [2, 3], [3, 5]]
    assert set(entry["js_divergence"]) == {"1", "3"} and entry["deltas"] == {}  # no metrics.json: no deltas
    assert [m["correct"] for m in data["models"]] == [None, None]
    reader = imageio_ffmpeg.read_frames(str(tmp_path / "out" / "compare_layer3.mp4"))
    next(reader)
    assert sum(1 for _ in reader) == make_trace().n_steps
    payload = page_payload(tmp_path / "out" / "compare.html")
    assert payload["layers"] == [1, 3] and payload["models"][1]["layers"] == {"1": 2, "3": 5}


# --- the page in Chromium -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fixture_page(tmp_path_factory):
    """A page of two hand-made traces (hostile token text, two images) that differ only in their rows."""
    ref, model = make_trace(layers=(1, 3)), make_trace(layers=(1, 3), seed=7)
    render = RenderConfig()
    keys = compare_keys(ref, text_start(ref), render.exclude, render.exclude_positions)
    models = [PageModel(ref, "base", True, {1: 1, 3: 3}), PageModel(model, "rl", False, {1: 1, 3: 3})]
    payload = build_compare_payload(models, keys, make_images(ref), render, sample_id="s1",
                                    text_start=text_start(ref), layer=3)
    return write_compare_page(payload, tmp_path_factory.mktemp("page")), ref, model, keys


def _open(browser, path: Path):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    seen = {"requests": [], "errors": []}
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.goto(path.as_uri())
    page.wait_for_selector(READY, timeout=15_000)
    return page, seen


def _colours(page) -> dict[int, tuple[int, ...]]:
    """Position -> the RGB of every coloured token span."""
    found = page.evaluate("""() => Array.from(document.querySelectorAll('.tok'))
        .filter((s) => s.style.color).map((s) => [Number(s.dataset.pos), s.style.color])""")
    return {pos: tuple(int(v) for v in re.findall(r"\d+", color)) for pos, color in found}


def test_the_page_stays_offline_and_runs_no_token_text(browser, fixture_page):
    path = fixture_page[0]
    page, seen = _open(browser, path)
    assert seen["requests"] == [path.as_uri()] and seen["errors"] == []
    assert page.evaluate("() => window.__pwned") is None
    texts = page.evaluate("() => Array.from(document.querySelectorAll('.tok'), (s) => s.textContent)")
    assert SCRIPT_TOKEN in texts and IMG_TOKEN in texts
    page.close()


def _video_colours(trace, keys, norm: str) -> dict[int, np.ndarray]:
    """Position -> the colour the video's model band gives each text key written before step PEAK_STEP."""
    render = RenderConfig()
    weigher = Weigher(RowSource(trace, 3), keys.text, keys.image, keys.sinks, norm, render.gamma, render.log_decades)
    text, lut = weigher.at(PEAK_STEP).text, colormap_lut(render.colormap)  # text: (n_before,)
    return {int(p): lut[int(np.rint(w * 255))] for p, w in zip(keys.text, text, strict=False) if not np.isnan(w)}


def test_page_colours_are_the_videos_for_a_model_and_for_the_difference(browser, fixture_page):
    path, ref, model, keys = fixture_page
    render = RenderConfig()
    page, seen = _open(browser, path)
    page.evaluate(f"() => window.attnvizCompare.setStep({PEAK_STEP})")
    page.click("button.model[value='1']")
    for norm in ("log", "step"):  # log: the viewer's normalisation, over the payload's render.log_decades
        page.select_option("#normalization", norm)
        colours, expected = _colours(page), _video_colours(model, keys, norm)
        assert set(colours) == set(expected)
        for pos, rgb in expected.items():
            np.testing.assert_allclose(colours[pos], rgb, atol=6, err_msg=f"{norm} scale, position {pos}")
    page.check("#difference")
    shown = keys.text[keys.text < ref.prompt_len + PEAK_STEP]
    d = step_difference(ref, model, 3, 3, keys.sinks, PEAK_STEP)
    scale = max(np.nanmax(np.abs(np.pad(step_difference(ref, model, 3, 3, keys.sinks, t), (0, 20))[shown]))
                for t in range(ref.n_steps))  # the global scale over the text keys
    diff_colours, diverging = _colours(page), colormap_lut("coolwarm")
    for pos in expected:
        rgb = diverging[int(np.rint(diverging_positions(d[[pos]], scale, render.gamma)[0] * 255))]
        np.testing.assert_allclose(diff_colours[pos], rgb, atol=8)
    assert diff_colours != colours and seen["errors"] == []
    page.close()


def test_the_pictures_keep_their_own_proportions_and_cells(browser, tmp_path):
    """Pictures wider than the model's input: each canvas is shown at its picture's proportions (as the MP4's tile),
    not the model's pixel size, and its grid still spans it (hovering a cell names that cell)."""
    ref = make_trace(layers=(3,))
    render = RenderConfig()
    keys = compare_keys(ref, text_start(ref), render.exclude, render.exclude_positions)
    wide = [im.resize((2 * im.width, im.height)) for im in make_images(ref)]
    payload = build_compare_payload([PageModel(ref, "base", True, {3: 3})], keys, wide, render, sample_id="s1",
                                    text_start=text_start(ref), layer=3)
    page, seen = _open(browser, write_compare_page(payload, tmp_path))
    for g in ref.images:
        box = page.locator(f'canvas[data-image="{g.index}"]').bounding_box()
        assert abs(box["height"] - box["width"] * g.pixel_h / (2 * g.pixel_w)) <= 1, (g.index, box)
    g, (_, r, c) = ref.images[PEAK[0]], PEAK
    box = page.locator(f'canvas[data-image="{g.index}"]').bounding_box()
    page.mouse.move(box["x"] + (c + 0.5) * box["width"] / g.grid_w, box["y"] + (r + 0.5) * box["height"] / g.grid_h)
    assert f"image {g.index + 1} · cell row {r}, column {c}" in page.text_content("#tip")
    assert seen["errors"] == []
    page.close()


def test_the_demo_page_switches_models_and_difference_mode(browser, compared):
    out, _ = compared
    page, seen = _open(browser, out / "compare.html")
    page.evaluate("() => window.attnvizCompare.setStep(17)")
    base = _colours(page)
    page.keyboard.press("2")
    twin = _colours(page)
    page.keyboard.press("d")
    diff = _colours(page)
    assert base and base != twin and diff not in (base, twin)
    assert page.text_content("#showing") == "demo_untaught − demo"
    assert "demo_untaught" in page.text_content("#js") and seen["errors"] == []
    page.keyboard.press("1")  # the reference: the difference mode ends
    assert _colours(page) == base and not page.is_checked("#difference")
    page.close()
