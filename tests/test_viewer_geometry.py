"""The viewer page reads every image cell from the sequence position the MP4 reads it from, for every family.

Cell tokens are one raster run only for Qwen-style geometry: LLaVA-NeXT / OneVision put a base tile first and a
newline token after every grid row, InternVL and Idefics3 / SmolVLM give each tile its own block plus a thumbnail /
global image with no cell, Mistral 3 closes every row with ``[IMG_BREAK]``. Geometries come from the tiny twins'
processors (no weights); the MP4's answer is :class:`attnviz.render.frames.FrameRenderer` itself.
"""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from attnviz.config import RenderConfig
from attnviz.models.tokens import special_token_ids, token_kinds, token_texts
from attnviz.render.frames import FrameRenderer
from attnviz.schema import VideoConfig
from attnviz.trace import ImageGeometry, Trace
from attnviz.viewer import build_payload, write_page
from attnviz.viewer.payload import PageSettings, cell_runs, expand_runs
from attnviz.viewer.screenshot import READY, _hover_peak_cell
from tests.twin_tools import adapter_geometry, twin_adapter
from tests.twins import FAMILIES

VISION = [f for f in FAMILIES if f != "text"]
SIZES = [(100, 70), (60, 90)]  # (W, H): one wide, one tall image
IMAGE_RGB = ((200, 200, 200), (90, 110, 140))  # uniform pictures: a cell's colour is its tint alone
ANSWER_LEN = 12  # answer tokens (steps) of a synthetic trace
INTERLEAVED = ["llava_next", "internvl", "idefics3", "mistral3"]  # newline / tiles + thumbnail / tiles / breaks
SQUARED = ["gemma3", "internvl", "idefics3"]  # inputs resized to squares or tiles: another aspect than the picture's


@pytest.fixture(scope="module")
def twin_prompt(twin_dir):
    """(family, sizes) -> (token ids, texts, kinds, geometry) of the twin's one-question prompt, cached."""
    cache: dict = {}

    def _prompt(family: str, sizes: tuple = tuple(SIZES)):
        if (family, sizes) not in cache:
            adapter = twin_adapter(twin_dir(family))
            inputs, geometry = adapter_geometry(adapter, [Image.new("RGB", s) for s in sizes])
            ids = inputs["input_ids"][0].tolist()
            kinds = token_kinds(ids, adapter.visual_token_ids(), special_token_ids(adapter.tokenizer))
            cache[family, sizes] = ids, token_texts(adapter.tokenizer, ids), kinds, geometry
        return cache[family, sizes]

    return _prompt


def full_positions(g) -> list[int]:
    """Cell k -> the sequence position the MP4 takes its weight from: the explicit map, else the raster run."""
    return list(g.cell_positions or range(g.token_start, g.token_start + g.grid_h * g.grid_w))


def make_trace(prompt, rows: list[np.ndarray]) -> Trace:
    """The twin's prompt, one answer token per row; ``rows[t]`` (prompt_len + t,) is the row of step t."""
    ids, texts, kinds, geometry = prompt
    n, width = len(rows), len(ids) + len(rows) - 1
    dense = np.zeros((n, width), dtype=np.float32)
    for t, row in enumerate(rows):
        dense[t, : len(row)] = row
    return Trace(token_ids=ids + [ids[-1]] * n, token_texts=texts + [" ok"] * n, token_kinds=kinds + ["text"] * n,
                 prompt_len=len(ids), images=list(geometry), rows={0: dense})


def pictures(trace: Trace) -> list[Image.Image]:
    return [Image.new("RGB", SIZES[g.index], IMAGE_RGB[g.index]) for g in trace.images]


def payload_of(trace: Trace, images: list[Image.Image]) -> dict:
    settings = PageSettings(layer=0, exclude=())  # as RenderConfig(exclude=[]): nothing left out of the scale
    return build_payload(trace, images, settings, sample_id="g", text_start=0)


@pytest.mark.parametrize("family", VISION)
@pytest.mark.parametrize("sizes", [tuple(SIZES[:1]), tuple(SIZES)], ids=["one", "two"])
def test_payload_maps_every_cell_to_the_position_the_video_reads(twin_prompt, family, sizes):
    prompt = twin_prompt(family, sizes)
    ids, _, _, geometry = prompt
    trace = make_trace(prompt, [np.full(len(ids), 1 / len(ids), np.float32)])
    payload = payload_of(trace, pictures(trace))
    assert len(payload["images"]) == len(geometry)
    for g, entry in zip(geometry, payload["images"], strict=True):
        cells = expand_runs(entry["cells"])
        assert cells == full_positions(g)
        for k, p in enumerate(cells):  # one-hot on cell k's position: ImageGeometry.cell_weights lights cell k
            row = np.zeros(len(ids), np.float32)
            row[p] = 1.0
            assert np.flatnonzero(g.cell_weights(row)).tolist() == [k], (family, g.index, k)
        n_cells = g.grid_h * g.grid_w  # compact: one run per raster image, per row or per tile row otherwise
        assert len(entry["cells"]) == 1 if g.cell_positions is None else len(entry["cells"]) <= n_cells // 4


def test_cell_runs_are_compact_and_keep_cells_without_a_token():
    assert cell_runs(ImageGeometry(0, 7, 2, 3, 56, 84)) == [[7, 6]]  # a raster run: one run
    g = ImageGeometry(0, 10, 2, 3, 56, 84, cell_positions=(10, 11, -1, -1, 20, 21))
    assert cell_runs(g) == [[10, 2], [-1, 2], [20, 2]]
    assert expand_runs(cell_runs(g)) == list(g.cell_positions)


@pytest.mark.parametrize("family", ["llava", "llava_onevision"])
def test_the_picture_is_the_part_of_the_image_the_grid_covers(twin_prompt, family):
    """LLaVA-1.5's grid covers the centre crop, OneVision's multi-image grid a square padded around the image: the
    page's picture is that region (the MP4's ``ImageGeometry.view``), so its cells lie over what the model saw."""
    prompt = twin_prompt(family)
    trace = make_trace(prompt, [np.full(len(prompt[0]), 1 / len(prompt[0]), np.float32)])
    images = []
    for w, h in SIZES:  # grey in a 10-px magenta frame
        px = np.full((h, w, 3), (255, 0, 255), np.uint8)
        px[10:-10, 10:-10] = 128
        images.append(Image.fromarray(px))
    for g, entry in zip(trace.images, payload_of(trace, images)["images"], strict=True):
        assert g.view_box is not None
        shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(entry["src"].split(",", 1)[1]))).convert("RGB"))
        size = g.view(images[g.index]).size  # the region at its own size and proportions, as the MP4 takes it
        expected = np.asarray(g.view(images[g.index]).resize(size), dtype=int)  # what the MP4 draws the grid over
        whole = np.asarray(images[g.index].resize(size), dtype=int)  # the whole image: cells over the wrong part
        assert shown.shape == expected.shape and np.abs(shown - expected).max() <= 2
        assert np.abs(shown - whole).max() > 60


# --- in Chromium: the cell the page tints is the cell the MP4 tints -------------------------------------------------


def probe_cells(g) -> list[int]:
    """Cells worth a one-hot row: the first and last, the first after a jump in positions (a newline / break token,
    or the next tile), and the first jump inside a row (a second tile)."""
    pos = full_positions(g)
    jumps = [k for k in range(1, len(pos)) if pos[k] != pos[k - 1] + 1]
    in_row = [k for k in jumps if k % g.grid_w]
    return sorted({0, len(pos) - 1, g.grid_w, *jumps[:1], *in_row[:1]})


ORPHAN = "no cell"  # a step whose one-hot row is on an image token without a cell


def geometry_rows(prompt, seed: int = 0) -> tuple[list[np.ndarray], list]:
    """Rows for a trace: one-hot on probe cells of each image, one on an image token without a cell (newline, base
    tile, thumbnail, global image; when there is one), then random softmax rows. ``what[t]``: (image, cell),
    ORPHAN or None (random)."""
    ids, _, kinds, geometry = prompt
    rows, what = [], []

    def one_hot(position: int, label) -> None:
        rows.append(np.zeros(len(ids) + len(rows), np.float32))
        rows[-1][position] = 1.0
        what.append(label)

    for g in geometry:
        for k in probe_cells(g):
            one_hot(full_positions(g)[k], (g.index, k))
    cells = {p for g in geometry for p in full_positions(g)}
    orphan = next((p for p, kind in enumerate(kinds) if kind == "image" and p not in cells), None)
    if orphan is not None:
        one_hot(orphan, ORPHAN)
    rng = np.random.default_rng(seed)
    while len(rows) < ANSWER_LEN:
        logits = rng.normal(0.0, 2.0, len(ids) + len(rows))
        rows.append((np.exp(logits) / np.exp(logits).sum()).astype(np.float32))
        what.append(None)
    return rows, what


def page_cells(page, image: int) -> np.ndarray:
    """(grid_h, grid_w, 3) RGB at every cell centre of image ``image``'s canvas."""
    return np.array(page.evaluate("""(i) => {
        const g = window.attnviz.data.images[i], cv = document.querySelector(`canvas[data-image="${i}"]`);
        const px = cv.getContext("2d").getImageData(0, 0, cv.width, cv.height).data, out = [];
        for (let r = 0; r < g.grid_h; r++) for (let c = 0; c < g.grid_w; c++) {
            const x = Math.floor((c + 0.5) * cv.width / g.grid_w), y = Math.floor((r + 0.5) * cv.height / g.grid_h);
            out.push(Array.from(px.slice(4 * (y * cv.width + x), 4 * (y * cv.width + x) + 3)));
        }
        return out;
    }""", image)).reshape(-1, 3)


def video_cells(renderer: FrameRenderer, frame: np.ndarray, image: int) -> np.ndarray:
    """(grid_h * grid_w, 3) RGB at every cell centre of image ``image``'s tile in an MP4 frame."""
    g, tile = renderer.trace.images[image], renderer.image.tiles[image]
    (w, h), (x0, y0) = tile.size, renderer.image_origin
    ys = [y0 + tile.y + int((r + 0.5) * h / g.grid_h) for r in range(g.grid_h)]
    xs = [x0 + tile.x + int((c + 0.5) * w / g.grid_w) for c in range(g.grid_w)]
    return frame[np.ix_(ys, xs)].reshape(-1, 3).astype(int)


def lit(cells: np.ndarray) -> list[int]:
    """Cells at the top of the red→green scale (a one-hot row's cell: green; the others: red)."""
    return np.flatnonzero(cells[:, 1] > cells[:, 0] + 40).tolist()


@pytest.fixture(scope="module")
def opened(browser, twin_prompt, tmp_path_factory):
    """family -> (trace, what, page, the MP4's FrameRenderer, page errors) for a trace over the twin's geometry."""
    out, pages = {}, []

    def _open(family: str):
        if family not in out:
            prompt = twin_prompt(family)
            rows, what = geometry_rows(prompt)
            trace = make_trace(prompt, rows)
            images = pictures(trace)
            path = write_page(payload_of(trace, images), tmp_path_factory.mktemp(f"page_{family}"))
            page, errors = browser.new_page(viewport={"width": 1400, "height": 900}), []
            page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
            page.goto(path.as_uri())
            page.wait_for_selector(READY, timeout=15_000)
            pages.append(page)
            renderer = FrameRenderer(trace, 0, images, RenderConfig(exclude=[]), VideoConfig(width=1280, height=720),
                                     sample_id="g", text_start=0)
            out[family] = trace, what, page, renderer, errors
        return out[family]

    yield _open
    for page in pages:
        page.close()


def assert_cells_as_the_video(opened, family: str) -> list:
    """Every step: every cell's colour is the MP4's, a one-hot row lights exactly its cell, in its image only."""
    trace, what, page, renderer, _ = opened(family)
    for t, target in enumerate(what):
        page.evaluate("(t) => window.attnviz.setStep(t)", t)
        frame = renderer.render(t)
        for g in trace.images:
            ours, video = page_cells(page, g.index), video_cells(renderer, frame, g.index)
            np.testing.assert_allclose(ours, video, atol=4, err_msg=f"{family} step {t} image {g.index}")
            if target is not None:
                expected = [target[1]] if target != ORPHAN and target[0] == g.index else []
                assert lit(ours) == lit(video) == expected, (family, t, g.index)
    return what


@pytest.mark.parametrize("family", INTERLEAVED)
def test_a_one_hot_row_on_a_cell_tints_that_cell_as_the_video_does(opened, family):
    what = assert_cells_as_the_video(opened, family)
    errors = opened(family)[-1]
    assert ORPHAN in what or family == "mistral3"  # [IMG_BREAK] is no image token: every image token has a cell
    assert errors == []


@pytest.mark.parametrize("family", INTERLEAVED)
def test_hover_pair_masses_and_peak_read_the_cells_true_positions(opened, family):
    trace, what, page, renderer, _ = opened(family)
    t = len(what) - 1  # a random row
    page.evaluate("(t) => window.attnviz.setStep(t)", t)
    row = trace.row(0, t)
    g = trace.images[-1]
    k = probe_cells(g)[1]  # the first cell after a jump
    r, c = divmod(k, g.grid_w)
    box = page.locator(f'canvas[data-image="{g.index}"]').bounding_box()
    page.mouse.move(box["x"] + (c + 0.5) * box["width"] / g.grid_w, box["y"] + (r + 0.5) * box["height"] / g.grid_h)
    tip = page.text_content("#tip")
    assert f"image {g.index + 1} · cell row {r}, column {c} · position {full_positions(g)[k]}" in tip
    weight = float(re.search(r"weight ([0-9.e+-]+)", tip).group(1))
    assert weight == pytest.approx(float(g.cell_weights(row)[r, c]), rel=2e-3, abs=1e-6)
    cell_maps = page.evaluate("() => window.attnviz.data.images.map((g) => Array.from(g.cellPos))")
    assert cell_maps == [full_positions(g) for g in trace.images]
    assert page.evaluate("() => Array.from(window.attnviz.core.cellMap([[10, 2], [-1, 2], [20, 2]]))") == [
        10, 11, -1, -1, 20, 21]
    masses = page.evaluate("(t) => attnvizVideo.masses(window.attnviz.rows()[t], window.attnviz.data.images)", t)
    np.testing.assert_allclose(masses, [g.cell_weights(row).sum() for g in trace.images], rtol=2e-3)
    _hover_peak_cell(page)  # the screenshot tool's hover: the strongest cell on show
    _, index, k = max((float(v), g.index, k) for g in trace.images for k, v in enumerate(g.cell_weights(row).flat))
    peak = trace.images[index]
    r, c = divmod(k, peak.grid_w)
    assert f"image {index + 1} · cell row {r}, column {c} · position {full_positions(peak)[k]}" in page.text_content(
        "#tip")


@pytest.mark.parametrize("family", INTERLEAVED)
def test_the_text_panel_shows_the_tokens_the_video_shows(opened, family):
    """Cell tokens are never text; newline / break / marker tokens inside an image block are what the MP4 makes of
    them (LLaVA-NeXT's newlines are image tokens: hidden; Mistral's [IMG_BREAK], Idefics3's markers: shown)."""
    trace, _, page, renderer, _ = opened(family)
    shown = page.evaluate("() => Array.from(document.querySelectorAll('.tok'), (s) => Number(s.dataset.pos))")
    assert shown == renderer.positions.tolist()
    assert not set(shown) & {p for g in trace.images for p in full_positions(g)}


@pytest.mark.parametrize("family", SQUARED)
def test_the_picture_keeps_its_own_proportions_as_the_video_does(opened, family):
    """The model's input is square or tiled, the picture is not: the canvas is shown at the picture's proportions
    (the MP4's tile's), not stretched to the model's pixel size, and its cells still light as the MP4's."""
    trace, _, page, renderer, errors = opened(family)
    boxes = page.evaluate("""() => Array.from(document.querySelectorAll('canvas[data-image]'), (c) => {
        const r = c.getBoundingClientRect(); return [Number(c.dataset.image), r.width, r.height]; })""")
    assert sorted(i for i, _, _ in boxes) == [g.index for g in trace.images]
    stretched = []
    for i, width, height in boxes:
        g = trace.images[i]
        w, h = g.view(pictures(trace)[g.index]).size
        assert abs(height - width * h / w) <= 1, (family, i, width, height, (w, h))
        tile_w, tile_h = renderer.image.tiles[i].size  # the MP4 fits the same proportions into its tile
        assert abs(tile_h - tile_w * h / w) <= 1
        stretched.append(abs(height - width * g.pixel_h / g.pixel_w) > 2)
    assert any(stretched)  # the model's pixel size has another shape: the old page drew this picture stretched
    assert_cells_as_the_video(opened, family)
    assert errors == []
