"""video.codec=auto: h264_nvenc when a CUDA device is present and the encoder opens (probed once, a few tiny frames),
libx264 otherwise; the CUDA check and ffmpeg are mocked here, and auto encodes for real with the fallback."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from attnviz import video
from attnviz.schema import VideoConfig


@pytest.fixture(autouse=True)
def fresh_probe():
    video.encoder_opens.cache_clear()
    yield
    video.encoder_opens.cache_clear()


@pytest.fixture()
def ffmpeg_calls(monkeypatch):
    """Records ffmpeg probe commands; each answers with the next exit code of ``codes`` (0: the encoder opened)."""
    calls, codes = [], []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        assert len(kwargs["input"]) == 256 * 144 * 3 * video.PROBE_FRAMES  # a few tiny frames
        return subprocess.CompletedProcess(cmd, codes.pop(0) if codes else 0, b"", b"No capable devices found")

    monkeypatch.setattr(video.subprocess, "run", fake_run)
    return calls, codes


def test_auto_takes_nvenc_when_cuda_is_present_and_the_encoder_opens(monkeypatch, ffmpeg_calls):
    calls, _ = ffmpeg_calls
    monkeypatch.setattr(video, "cuda_present", lambda: True)
    assert video.resolve_codec("auto") == "h264_nvenc"
    assert video.resolve_codec("auto") == "h264_nvenc"
    assert len(calls) == 1  # probed once
    cmd = calls[0]
    assert cmd[cmd.index("-c:v") + 1] == "h264_nvenc" and cmd[-3:] == ["-f", "null", "-"]


def test_auto_falls_back_to_libx264_when_the_encoder_does_not_open(monkeypatch, ffmpeg_calls):
    calls, codes = ffmpeg_calls
    codes.append(1)
    monkeypatch.setattr(video, "cuda_present", lambda: True)
    assert video.resolve_codec("auto") == "libx264" and len(calls) == 1


def test_auto_does_not_probe_without_cuda(monkeypatch, ffmpeg_calls):
    calls, _ = ffmpeg_calls
    monkeypatch.setattr(video, "cuda_present", lambda: False)
    assert video.resolve_codec("auto") == "libx264" and calls == []


def test_a_named_codec_is_used_as_given(monkeypatch, ffmpeg_calls):
    monkeypatch.setattr(video, "cuda_present", lambda: pytest.fail("no CUDA check for a named codec"))
    assert video.resolve_codec("libx265") == "libx265" and ffmpeg_calls[0] == []


def test_nvenc_quality_and_preset_options():
    args = video.encode_args(VideoConfig(codec="h264_nvenc", crf=28, preset="ultrafast"))
    assert args[args.index("-cq") + 1] == "28" and args[args.index("-preset") + 1] == "p1" and "-crf" not in args
    x264 = video.encode_args(VideoConfig(codec="libx264", crf=23, preset="medium"))
    assert x264[x264.index("-crf") + 1] == "23" and x264[x264.index("-preset") + 1] == "medium"


def test_cuda_check_without_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # as in a render worker
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert video.cuda_present() is False
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert isinstance(video.cuda_present(), bool)


def test_auto_encodes_here(tmp_path, monkeypatch):
    monkeypatch.setattr(video, "cuda_present", lambda: False)
    frames = (np.full((64, 96, 3), i * 20, dtype=np.uint8) for i in range(5))
    path = video.write_video(frames, tmp_path / "v.mp4", VideoConfig(codec="auto"), total=5)
    assert path.stat().st_size > 0
