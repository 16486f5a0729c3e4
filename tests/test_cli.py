"""The real command line on the built-in demo: one run, a 2x2 multirun, the Python API, a bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import pytest

from attnviz.config import PROJECT_ROOT
from attnviz.outputs import read_metadata
from attnviz.trace import load_trace

METADATA_KEYS = {
    "status",
    "model",
    "sample",
    "layer",
    "captured_layers",
    "prompt",
    "generated_text",
    "tokens",
    "images",
    "n_frames",
    "n_generated",
    "timings",
    "versions",
    "config",
    "files",
    "row_semantics",
}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(PROJECT_ROOT / "run.py"), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)


def _decoded_frames(path: Path) -> tuple[int, tuple[int, int]]:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    count = sum(1 for _ in reader)
    return count, tuple(meta["size"])


def _check_run_dir(run_dir: Path, layer: int, sample_idx: int, size: tuple[int, int], captured=None) -> dict:
    meta = read_metadata(run_dir)
    assert set(meta) >= METADATA_KEYS
    assert meta["status"] == "complete"
    assert meta["layer"] == layer and meta["config"]["sample_idx"] == sample_idx
    video = run_dir / f"combined_attention_visualization_layer{layer}.mp4"
    frames, got_size = _decoded_frames(video)
    assert frames == meta["n_generated"] == meta["n_frames"] > 0
    assert got_size == size
    trace = load_trace(run_dir / "trace")
    assert trace.layers == (captured or [layer]) and trace.n_steps == frames
    assert "<answer>" in meta["generated_text"]
    return meta


@pytest.mark.slow
def test_single_run_with_defaults(tmp_path, compose_cfg):
    default_layer = compose_cfg().layer_idx  # the demo preset's best layer
    result = _cli(f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    meta = _check_run_dir(tmp_path / "run", layer=default_layer, sample_idx=0, size=(1920, 1080))
    assert meta["model"]["family"] == "Qwen2-VL" and meta["sample"]["id"]
    kinds = {t["kind"] for t in meta["tokens"]}
    assert kinds == {"text", "image", "special"}
    assert meta["text_start"]["start_phrase_found"] is True


@pytest.mark.slow
def test_multirun_two_layers_two_samples(tmp_path):
    result = _cli(
        "-m",
        "layer_idx=0,1",
        "sample_idx=0,1",
        "video.width=480",
        "video.height=270",
        f"hydra.sweep.dir={tmp_path}/sweep",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dirs = sorted(p for p in (tmp_path / "sweep").iterdir() if (p / "metadata.json").is_file())
    assert len(run_dirs) == 4
    seen = set()
    for run_dir in run_dirs:
        cfg = json.loads((run_dir / "metadata.json").read_text())["config"]
        # the jobs of a sample share one generation that captured both swept layers
        _check_run_dir(run_dir, cfg["layer_idx"], cfg["sample_idx"], (480, 270), captured=[0, 1])
        seen.add((cfg["layer_idx"], cfg["sample_idx"]))
    assert seen == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_python_api_two_images(tmp_path, demo_model_dir):
    from attnviz import AttentionVisualizer
    from attnviz.config import VideoConfig

    viz = AttentionVisualizer(str(demo_model_dir), max_image_num=2, video=VideoConfig(width=320, height=180))
    data = PROJECT_ROOT / "demo" / "data"
    samples = json.loads((data / "demo.json").read_text())
    two = next(i for i, s in enumerate(samples) if isinstance(s["image"], list) and len(s["image"]) == 2)
    sample, images = viz.load_sample_data(str(data / "demo.json"), str(data), two)
    viz.capture.layers = "all"  # one generation, every layer's rows on disk
    path = viz.create_attention_visualization_for_sample(sample, images, layer_idx=-1, output_dir=tmp_path)
    assert Path(path).name == "combined_attention_visualization_layer3.mp4"
    meta = read_metadata(tmp_path)
    assert meta["layer"] == 3 and meta["status"] == "complete" and meta["captured_layers"] == [0, 1, 2, 3]
    assert load_trace(tmp_path / "trace").layers == [0, 1, 2, 3]
    assert [(g["grid_h"], g["grid_w"]) for g in meta["images"]] == [(8, 8), (8, 8)]
    assert _decoded_frames(Path(path)) == (meta["n_frames"], (320, 180))


def test_bad_input_is_one_line_and_nonzero(tmp_path):
    result = _cli("sample_idx=999", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert result.returncode != 0
    assert "sample_idx=999 is out of range" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "metadata.json").exists()


@pytest.mark.slow
def test_render_only_rerenders_another_layer_without_the_model(tmp_path):
    small = ("video.width=320", "video.height=180")
    first = _cli("capture.layers=[0]", *small, f"hydra.run.dir={tmp_path}/a", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    second = _cli(
        f"render_only={tmp_path}/a", "layer_idx=0", "model.path=/nonexistent", "render.colormap=viridis",
        "video.width=480", "video.height=270", f"hydra.run.dir={tmp_path}/b", cwd=tmp_path,
    )
    assert second.returncode == 0, second.stderr[-3000:]
    meta = read_metadata(tmp_path / "b")
    assert meta["status"] == "complete" and meta["layer"] == 0 and meta["source_run"] == str(tmp_path / "a")
    assert _decoded_frames(tmp_path / "b" / "combined_attention_visualization_layer0.mp4") == (
        meta["n_frames"],
        (480, 270),
    )
    missing = _cli(f"render_only={tmp_path}/a", "layer_idx=1", f"hydra.run.dir={tmp_path}/c", cwd=tmp_path)
    assert missing.returncode != 0 and "layer_idx=1 was not captured" in missing.stderr + missing.stdout
    none = _cli(f"render_only={tmp_path}/nothing", f"hydra.run.dir={tmp_path}/d", cwd=tmp_path)
    assert none.returncode != 0 and "holds no metadata.json" in none.stderr + none.stdout
