"""Video tests: the MP4 decodes to exactly the frames written; a failure leaves no file under the final name."""

from __future__ import annotations

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from attnviz.config import RenderConfig, VideoConfig
from attnviz.render import find_text_start, frame_count, render_frames
from attnviz.trace import ImageGeometry, Trace
from attnviz.video import write_video

SMALL = VideoConfig(width=96, height=64, fps=8)


def decode(path) -> tuple[tuple[int, int], int]:
    """((width, height), frame count) as ffmpeg reads the file back."""
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    return tuple(meta["size"]), sum(1 for _ in reader)


def ramp_frames(n: int, h: int = 64, w: int = 96):
    for i in range(n):
        yield np.full((h, w, 3), 20 * i % 256, dtype=np.uint8)


def failing_frames(n_good: int):
    yield from ramp_frames(n_good)
    raise RuntimeError("frame source broke")


def test_mp4_decodes_to_exactly_the_frames_written(tmp_path):
    out = write_video(ramp_frames(7), tmp_path / "v.mp4", SMALL, total=7)
    assert out == tmp_path / "v.mp4"
    assert decode(out) == ((96, 64), 7)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]  # no temp file left


def test_odd_frames_are_padded_to_even(tmp_path):
    out = write_video(ramp_frames(3, h=33, w=51), tmp_path / "odd.mp4", SMALL)
    assert decode(out) == ((52, 34), 3)


def test_failing_frame_source_leaves_no_video(tmp_path):
    with pytest.raises(RuntimeError, match="broke"):
        write_video(failing_frames(3), tmp_path / "v.mp4", SMALL, total=10)
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_the_previous_video(tmp_path):
    path = tmp_path / "v.mp4"
    write_video(ramp_frames(2), path, SMALL)
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        write_video(failing_frames(4), path, SMALL)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]


@pytest.mark.parametrize(
    "frames, error",
    [([], "no frames"), ([np.zeros((64, 96, 3), np.uint8), np.zeros((64, 98, 3), np.uint8)], "shape")],
)
def test_bad_frames_are_rejected_without_a_file(tmp_path, frames, error):
    with pytest.raises(ValueError, match=error):
        write_video(frames, tmp_path / "v.mp4", SMALL)
    assert list(tmp_path.iterdir()) == []


def test_encoder_failure_is_reported_and_cleaned_up(tmp_path):
    with pytest.raises(RuntimeError, match="ffmpeg"):
        write_video(ramp_frames(2), tmp_path / "v.mp4", VideoConfig(codec="no-such-codec"))
    assert list(tmp_path.iterdir()) == []


def test_rendered_trace_to_mp4(tmp_path):
    texts = ["<|im_start|>", "user", "\n", "<|vision_start|>"] + ["<|image_pad|>"] * 4 + ["<|vision_end|>"]
    texts += [" Where", "?", "<|im_end|>", "\n", "<|im_start|>", "assistant", "\n", "(", "1", ",", "0", ")"]
    kinds = ["special", "text", "text", "special"] + ["image"] * 4 + ["special"]
    kinds += ["text", "text", "special", "text", "special", "text", "text"] + ["text"] * 5
    prompt_len = len(texts) - 5
    rows = np.random.default_rng(0).random((5, len(texts) - 1)).astype(np.float32)  # (T, S - 1)
    geom = ImageGeometry(0, 4, 2, 2, 56, 56)
    trace = Trace(list(range(len(texts))), texts, kinds, prompt_len, [geom], {0: rows})
    start, _ = find_text_start(trace, "Where")
    video = VideoConfig(width=250, height=141, fps=4)
    frames = render_frames(
        trace,
        0,
        [Image.new("RGB", (64, 64), (200, 200, 200))],
        RenderConfig(font_size=12),
        video,
        sample_id="t",
        text_start=start,
    )
    out = write_video(frames, tmp_path / "combined_attention_visualization_layer0.mp4", video, frame_count(trace))
    assert decode(out) == ((250, 140), 5)


def test_encoder_preset_reaches_ffmpeg(tmp_path):
    write_video(ramp_frames(2), tmp_path / "ok.mp4", VideoConfig(width=96, height=64, preset="veryfast"))
    with pytest.raises(RuntimeError, match="ffmpeg"):
        write_video(ramp_frames(2), tmp_path / "v.mp4", VideoConfig(preset="no-such-preset"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.mp4"]


def test_predecessor_preset_brings_its_colours_and_an_explicit_render_wins(compose_cfg):
    cfg = compose_cfg("video=predecessor")
    assert (cfg.video.width, cfg.video.height) == (2500, 1400) and cfg.video.width % 2 == cfg.video.height % 2 == 0
    assert cfg.render.colormap == "red_green" and cfg.render.norm == "step" and cfg.render.gamma == 0.4
    assert list(cfg.render.exclude) == [] and not cfg.render.overlay.enabled
    assert list(compose_cfg().render.exclude) == ["bos", "vision_markers", "chat_template"]
    cfg = compose_cfg("video=predecessor", "render=heatmap")
    assert cfg.video.width == 2500 and cfg.render.image_mode == "heatmap"
