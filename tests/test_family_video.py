"""Video inputs on the tiny Qwen2-VL, Qwen2.5-VL and Qwen3-VL twins: rows equal eager output_attentions (1e-6, fp32)
at every step and layer, alone and in a left-padded batch; each temporal patch's cells are the right tokens (one-hot
rows and the processor's own pixels); a run writes the MP4, the pair pictures, the page and per-pair metrics; other
families refuse a video in one line."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from attnviz.app import run
from attnviz.capture.batch import collate
from attnviz.clips import Clip, read_clip
from attnviz.data import Sample
from attnviz.errors import AttnvizError
from attnviz.models.loading import load_model
from attnviz.outputs import read_metadata
from attnviz.rerender import rerender_run
from attnviz.schema import RenderConfig, VideoConfig
from attnviz.trace import ImageGeometry, load_trace
from attnviz.tracing import prepare_sample
from tests.capture_reference import eager_attentions, generate_captured, max_row_error, plain_generate, with_answer
from tests.twin_tools import twin_adapter
from tests.video_fixture import write_frames, write_mp4

FAMILIES = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"]
NEW_TOKENS = 5


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Clip]:
    """A folder of 6 PNG frames (3 pairs) and an MP4 of 10 frames at 5 fps (2 s: 4 frames, 2 pairs)."""
    folder = tmp_path_factory.mktemp("video")
    return {"frames": read_clip(write_frames(folder / "frames", 6), "frames", "s"),
            "mp4": read_clip(write_mp4(folder / "clip.mp4", 10, 5), "clip.mp4", "s")}


def _still() -> Image.Image:
    return Image.fromarray(np.random.default_rng(1).integers(0, 255, (60, 84, 3), dtype=np.uint8))


def _inputs(loaded, items_per_sample: list[list], questions: list[str]) -> dict:
    prepared = [loaded.adapter.prepare(q, items)[1] for q, items in zip(questions, items_per_sample, strict=True)]
    if len(prepared) == 1:
        return prepared[0]
    return collate(prepared, loaded.adapter.tokenizer.pad_token_id)[0]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("case", ["frames", "mp4", "batch"])
def test_rows_equal_eager_with_a_video_on_every_step_and_layer(twin_dir, clips, family, case):
    loaded = load_model(str(twin_dir(family)), device="cpu", dtype="float32")
    if case == "batch":  # an image and 3 pairs beside an MP4 alone under a longer question: left padding
        inputs = _inputs(loaded, [[_still(), clips["frames"]], [clips["mp4"]]],
                         ["Where?", "What moves in this video, and where does it go? Explain."])
    else:
        inputs = _inputs(loaded, [[_still(), clips[case]]], ["What moves?"])
    layers, prompt_len = list(range(loaded.num_layers)), inputs["input_ids"].shape[1]
    sequences, sink = generate_captured(loaded.model, inputs, layers, (0,), max_new_tokens=NEW_TOKENS)
    reference = eager_attentions(loaded.model, with_answer(inputs, sequences))
    assert all(len(sink.rows[layer]) == NEW_TOKENS for layer in layers)
    assert max_row_error(sink, reference, layers, prompt_len) <= 1e-6
    assert max_row_error(sink, reference, [0], prompt_len, heads=True) <= 1e-6
    assert torch.equal(sequences, plain_generate(loaded.model, inputs, max_new_tokens=NEW_TOKENS))


def _video_positions(adapter, inputs) -> list[int]:
    return torch.nonzero(inputs["input_ids"][0] == adapter.config.video_token_id).flatten().tolist()


@pytest.mark.parametrize("family", FAMILIES)
def test_one_hot_on_the_kth_video_token_lights_cell_t_r_c_only(twin_dir, clips, family):
    adapter = twin_adapter(twin_dir(family))
    inputs, geometry = adapter.prepare("Where?", [_still(), clips["frames"]])[1:]
    video = [g for g in geometry if g.is_video]
    assert [g.index for g in geometry] == [0, 1, 2, 3] and [g.frames for g in video] == [(0, 1), (2, 3), (4, 5)]
    assert [g.time_s for g in video] == [0.0, 1.0, 2.0] and {g.n_frames for g in video} == {6}
    gh, gw = video[0].grid_h, video[0].grid_w
    positions = _video_positions(adapter, inputs)
    assert len(positions) == 3 * gh * gw
    for k, position in enumerate(positions):
        t, r, c = k // (gh * gw), k % (gh * gw) // gw, k % gw  # token order: t-major, then rows, then columns
        row = np.zeros(inputs["input_ids"].shape[1], dtype=np.float32)
        row[position] = 1.0
        for g in geometry:
            lit = np.argwhere(g.cell_weights(row) == 1.0).tolist()
            assert lit == ([[r, c]] if g is video[t] else []), (family, k)


def _spot_clip(cell_px: int, pair: int, cell: tuple[int, int]) -> Clip:
    """6 black frames of 3x2 cells (no resize); the frames of ``pair`` have a white cell ``cell`` (row, col)."""
    frames = []
    for i in range(6):
        pixels = np.zeros((2 * cell_px, 3 * cell_px, 3), dtype=np.uint8)
        if i // 2 == pair:
            pixels[cell[0] * cell_px : (cell[0] + 1) * cell_px, cell[1] * cell_px : (cell[1] + 1) * cell_px] = 255
        frames.append(Image.fromarray(pixels))
    return Clip("spot", tuple(frames), tuple(range(6)), 2.0, 6)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("pair,cell", [(0, (0, 0)), (1, (1, 2)), (2, (0, 1))])
def test_a_bright_cell_of_a_pair_is_that_patchs_cell_token(twin_dir, family, pair, cell):
    adapter = twin_adapter(twin_dir(family))
    processor = adapter.processor.video_processor
    merge = processor.merge_size
    inputs, geometry = adapter.prepare("Where?", [_spot_clip(processor.patch_size * merge, pair, cell)])[1:]
    assert [(g.grid_h, g.grid_w) for g in geometry] == [(2, 3)] * 3
    # the processor's patches, merge² consecutive per video token in token order: the brightest is the spot's
    brightness = inputs["pixel_values_videos"].float().mean(dim=1).reshape(-1, merge * merge).mean(dim=1)
    bright = _video_positions(adapter, inputs)[int(brightness.argmax())]
    assert bright == list(geometry[pair].positions)[cell[0] * 3 + cell[1]]


@pytest.mark.parametrize("family", FAMILIES)
def test_a_video_run_writes_the_video_panel_pages_and_per_pair_metrics(twin_dir, compose_cfg, tmp_path, family):
    write_mp4(tmp_path / "clip.mp4", 10, 5)
    _still().save(tmp_path / "a.png")
    sample = {"id": "v1", "problem": "What moves?", "image": ["a.png"], "video": "clip.mp4"}
    (tmp_path / "d.json").write_text(json.dumps([sample]))
    video = run(compose_cfg(f"model.path={twin_dir(family)}", f"dataset.json={tmp_path / 'd.json'}",
                            f"dataset.image_dir={tmp_path}", "layer_idx=-1", "capture.layers=all", "device=cpu",
                            "generation.max_new_tokens=3", "video.width=320", "video.height=180",
                            "metrics.baseline=generic"))
    meta, trace = read_metadata(tmp_path), load_trace(tmp_path)
    assert video.is_file() and meta["status"] == "complete" and meta["n_frames"] == trace.n_steps
    assert [ImageGeometry(**g) for g in meta["images"]] == trace.images
    assert [(g.video, g.frames) for g in trace.images] == [(None, None), (0, (0, 1)), (0, (2, 3))]
    assert sorted(p.name for p in (tmp_path / "trace").glob("image_*.png")) == [f"image_{i}.png" for i in range(3)]
    assert all(trace.token_kinds[p] == "image" for g in trace.images for p in g.positions)
    page = (tmp_path / "viewer.html").read_text()
    assert '"frames":[2,3]' in page and "frame-slider" in page
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n_images"] == 3
    for entry in metrics["rows"]:  # per pair (and per image) shares of the row, parts of the image share
        shares = entry["image_shares"]
        assert len(shares) == 3 and sum(shares) == pytest.approx(entry["image_share"], abs=1e-6)
    again = rerender_run(tmp_path, 0, RenderConfig(), VideoConfig(width=320, height=180), "", tmp_path / "again")
    assert again.is_file() and read_metadata(tmp_path / "again")["layer"] == 0  # from the pair pictures alone


def test_families_without_video_refuse_it_in_one_line(twin_dir, clips):
    sample = Sample("s9", "What moves?", [], {}, video_path="frames")
    loaded = SimpleNamespace(adapter=twin_adapter(twin_dir("llava")))
    with pytest.raises(AttnvizError) as err:
        prepare_sample(loaded, sample, [clips["frames"]], "{Question}")
    message = str(err.value)
    assert "\n" not in message and "sample s9" in message and "Qwen2-VL" in message and "'video'" in message
    with pytest.raises(AttnvizError, match="GLM-4.1V takes no video"):
        twin_adapter(twin_dir("glm4v")).prepare("Where?", [clips["frames"]])
