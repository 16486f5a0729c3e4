"""A sample's video without a model: sampling, reading files and frame folders, bad input, the geometry record, the
MP4's video tile and the viewer page's frame slider."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from attnviz.clips import Clip, Sampling, panel_images, read_clip, sample_indices
from attnviz.data import load_images, load_sample, parse_sample
from attnviz.errors import AttnvizError
from attnviz.render.colors import CURRENT_TOKEN_RGB
from attnviz.render.frames import FrameRenderer
from attnviz.render.video_panel import panel_groups, strongest
from attnviz.schema import RenderConfig, VideoConfig
from attnviz.trace import ImageGeometry
from attnviz.viewer import build_payload, write_page
from attnviz.viewer.payload import PageSettings
from attnviz.viewer.screenshot import READY
from tests.video_fixture import PAIR_RGB, grey, video_pictures, video_trace, write_frames, write_mp4


@pytest.mark.parametrize(
    "total,seconds,expected",
    [
        (300, 10.0, np.linspace(0, 299, 16).round().astype(int).tolist()),  # 20 at 2 fps: capped at 16
        (30, 1.0, [0, 10, 19, 29]),  # 2 at 2 fps: raised to 4
        (12, 3.0, [0, 2, 4, 7, 9, 11]),
        (5, 2.5, [0, 1, 3, 4]),  # 5 frames: rounded down to whole pairs
        (1, 0.5, [0, 0]),  # one frame: repeated to make a pair
    ],
)
def test_sampling_follows_qwen_vl_utils(total, seconds, expected):
    assert sample_indices(total, seconds) == expected


def test_a_folder_of_frames_is_sorted_by_name_and_sampled_at_2_fps(tmp_path):
    folder = write_frames(tmp_path / "frames", 6)
    Image.new("RGB", (40, 30), (grey(3),) * 3).save(folder / "f03.png")  # another size: resized to the first's
    clip = read_clip(folder, "frames", "s1")
    assert clip.indices == (0, 1, 2, 3, 4, 5) and clip.times == (0.0, 0.5, 1.0, 1.5, 2.0, 2.5)
    assert clip.size == (84, 56) and all(f.size == (84, 56) for f in clip.frames)
    assert [f.getpixel((5, 5))[0] for f in clip.frames] == [grey(i) for i in range(6)]
    assert [p.getpixel((5, 5))[0] for p in clip.pictures()] == [grey(0), grey(2), grey(4)]  # first of each pair
    assert clip.array().shape == (6, 56, 84, 3) and clip.n_pairs == 3


def test_an_mp4_is_sampled_at_2_fps_keeping_the_frame_numbers_and_times(tmp_path):
    clip = read_clip(write_mp4(tmp_path / "clip.mp4", n=10, fps=5), "clip.mp4", "s1")  # 2 s -> 4 frames
    assert clip.indices == (0, 3, 6, 9) and clip.source_frames == 10 and clip.source_fps == pytest.approx(5.0)
    assert clip.times == pytest.approx((0.0, 0.6, 1.2, 1.8))
    levels = [float(np.asarray(f).mean()) for f in clip.frames]
    assert np.allclose(levels, [grey(i) for i in clip.indices], atol=4)  # the frames decoded are those numbers
    meta = clip.metadata()
    assert meta["frames_indices"] == [0, 3, 6, 9] and meta["total_num_frames"] == 10 and meta["width"] == 96


def test_the_sampling_settings_change_the_frames_taken(tmp_path, compose_cfg):
    path = write_mp4(tmp_path / "clip.mp4", n=12, fps=2)  # 6 s
    assert len(read_clip(path, "clip.mp4", "s1").frames) == 12  # 2 fps
    assert read_clip(path, "clip.mp4", "s1", Sampling(fps=1.0)).indices == (0, 2, 4, 7, 9, 11)  # 6 s -> 6 frames
    assert len(read_clip(path, "clip.mp4", "s1", Sampling(fps=2.0, max_frames=6)).frames) == 6  # capped
    assert len(read_clip(path, "clip.mp4", "s1", Sampling(fps=0.25)).frames) == 4  # the minimum
    from attnviz.config import typed
    from attnviz.data import video_sampling

    app = typed(compose_cfg("dataset.video_fps=1.0", "dataset.video_max_frames=6"))
    assert video_sampling(app.dataset) == Sampling(1.0, 4, 6)


@pytest.mark.parametrize("settings, needle", [({"fps": 0.0}, "dataset.video_fps=0.0"),
                                              ({"min_frames": 8, "max_frames": 4}, "video_min_frames=8")])
def test_bad_sampling_settings_are_one_line_errors(settings, needle):
    _one_line_error(lambda: Sampling(**settings), needle)


def _one_line_error(call, *needles) -> str:
    with pytest.raises(AttnvizError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message and all(n in message for n in needles), message
    return message


def test_bad_videos_are_one_line_errors_naming_the_sample_and_the_fix(tmp_path):
    _one_line_error(lambda: read_clip(tmp_path / "nope.mp4", "nope.mp4", "s7"), "sample s7", "does not exist",
                    "dataset.image_dir")
    (tmp_path / "empty").mkdir()
    _one_line_error(lambda: read_clip(tmp_path / "empty", "empty", "s7"), "sample s7", "no frames", "folder of")
    (tmp_path / "text.mp4").write_text("not a video")
    _one_line_error(lambda: read_clip(tmp_path / "text.mp4", "text.mp4", "s7"), "sample s7", "cannot be read",
                    "video file")
    folder = write_frames(tmp_path / "broken", 3)
    (folder / "f02.png").write_bytes(b"\x89PNG broken")  # a sampled frame (3 frames: the first and last)
    _one_line_error(lambda: read_clip(folder, "broken", "s7"), "sample s7", "frame f02.png cannot be read")


def test_bad_video_fields_are_one_line_errors():
    _one_line_error(lambda: parse_sample({"problem": "p", "video": 3}, 4), "sample 4", "'video' must be one path")
    _one_line_error(lambda: parse_sample({"problem": "p"}, 4), "sample 4", "no 'image' field", "'video'")


def test_a_video_comes_after_the_images_and_counts_as_one_panel_per_pair(tmp_path):
    write_frames(tmp_path / "clip", 4)
    Image.new("RGB", (30, 20), (1, 2, 3)).save(tmp_path / "a.png")
    samples = [{"id": "v", "problem": "p", "image": "a.png", "video": "clip"}, {"problem": "q", "video": "clip"}]
    (tmp_path / "d.json").write_text(json.dumps(samples))
    sample, items = load_sample(tmp_path / "d.json", tmp_path, 0)
    assert sample.video_path == "clip" and isinstance(items[0], Image.Image) and isinstance(items[1], Clip)
    assert [p.getpixel((0, 0)) for p in panel_images(items)] == [(1, 2, 3), (grey(0),) * 3, (grey(2),) * 3]
    only_video = load_images(parse_sample(samples[1], 1), tmp_path, max_image_num=0)
    assert len(only_video) == 1 and isinstance(only_video[0], Clip)


def test_a_temporal_patch_is_recorded_and_reloaded_like_an_image():
    g = ImageGeometry(3, 40, 2, 3, 56, 84, video=0, frames=(4, 5), n_frames=16, time_s=2.0)
    again = ImageGeometry(**json.loads(json.dumps(dataclasses.asdict(g))))
    assert again == g and again.is_video and again.label() == "frames 5–6 of 16 · 2.0 s"
    old = {k: v for k, v in dataclasses.asdict(ImageGeometry(0, 5, 2, 2, 56, 56)).items() if k in
           ("index", "token_start", "grid_h", "grid_w", "pixel_h", "pixel_w")}  # a trace written before videos
    assert not ImageGeometry(**old).is_video and ImageGeometry(**old).label() == "image 1"


def test_the_video_tile_shows_the_pair_with_the_most_attention_and_its_strip():
    trace = video_trace()
    assert panel_groups(trace.images) == [[0], [1, 2, 3]]
    assert strongest(np.array([0.0, 0.2, 0.5, 0.5]), [1, 2, 3]) == 1  # ties: the earliest pair
    render = RenderConfig(tint_alpha=0.0, grid_lines=False)  # untinted: a tile shows its picture's own colour
    renderer = FrameRenderer(trace, 0, video_pictures(trace), render, VideoConfig(width=640, height=360),
                             sample_id="v", text_start=0)
    (slot,), (x0, y0) = renderer.image.videos, renderer.image_origin
    captions = set()
    for t in range(trace.n_steps):
        frame = renderer.render(t)
        tile = renderer.image.tiles[1 + t % 3]
        w, h = tile.size
        assert np.all(frame[y0 + tile.y : y0 + tile.y + h, x0 + tile.x : x0 + tile.x + w] == PAIR_RGB[t % 3])
        sx, sy, sw, sh = slot.strip
        bar_x = x0 + sx + (2 * (t % 3) + 1) * sw // 6  # the middle of the shown pair's bar, its bottom row
        assert tuple(frame[y0 + sy + sh - 1, bar_x]) == CURRENT_TOKEN_RGB
        cx, cy = slot.caption_xy
        captions.add(frame[y0 + cy : y0 + cy + 10, x0 + cx : x0 + cx + 200].tobytes())
    assert len(captions) == 3  # each pair's own caption


def test_the_viewer_page_scrubs_the_pairs_and_follows_attention(browser, tmp_path):
    trace = video_trace()
    payload = build_payload(trace, video_pictures(trace), PageSettings(layer=0, tint_alpha=0.0, grid_lines=False),
                            sample_id="v", text_start=0)
    assert [g.get("frames") for g in payload["images"]] == [None, [0, 1], [2, 3], [4, 5]]
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(write_page(payload, tmp_path).as_uri())
    page.wait_for_selector(READY, timeout=15_000)
    centre = """() => { const cv = document.querySelector('canvas[data-video="0"]');
        return Array.from(cv.getContext('2d').getImageData(cv.width >> 1, cv.height >> 1, 1, 1).data.slice(0, 3)); }"""
    for t in range(trace.n_steps):  # follow attention (the default): the strongest pair, as in the MP4
        page.evaluate("(t) => window.attnviz.setStep(t)", t)
        assert tuple(page.evaluate(centre)) == PAIR_RGB[t % 3]
    page.fill(".frame-slider", "1")  # scrubbing picks a pair and stops following
    for t in (0, 2):
        page.evaluate("(t) => window.attnviz.setStep(t)", t)
        assert tuple(page.evaluate(centre)) == PAIR_RGB[1]
    assert "frames 3–4 of 6" in page.text_content("figure:has(canvas[data-video]) figcaption")
    assert not page.is_checked(".video-controls input[type=checkbox]") and errors == []
    page.close()
