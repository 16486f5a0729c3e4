"""Every bad input gets one clear line, exit code 2, no traceback (unless debug=true) and no complete-looking output.

Most cases call the Hydra entry point in-process (``main(cfg)`` runs the task function directly on a composed
config); a few go through the real command line.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from PIL import Image

import attnviz.video
from attnviz.app import main
from attnviz.config import PROJECT_ROOT
from attnviz.errors import AttnvizError, as_user_error
from tests.conftest import DEMO_DATA

SMALL_VIDEO = ("video.width=320", "video.height=180")

MODEL_LOAD = "attnviz.visualizer.AttentionVisualizer.from_config"  # what a run calls to load the model


def fails_cleanly(cfg, caplog) -> str:
    """Run ``cfg`` through the entry point; it must exit 2 with one error line and leave no finished output."""
    caplog.clear()
    with caplog.at_level(logging.INFO), pytest.raises(SystemExit) as stop:
        main(cfg)
    assert stop.value.code == 2
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None
    line = errors[0].getMessage()
    assert "\n" not in line and "Traceback" not in line
    assert_nothing_claims_completion(Path(cfg.output_dir))
    return line


def assert_nothing_claims_completion(run_dir: Path) -> None:
    if not run_dir.is_dir():
        return
    assert not list(run_dir.glob("*.mp4")), "a video under its final name"
    meta = run_dir / "metadata.json"
    assert not meta.exists() or json.loads(meta.read_text()).get("status") != "complete"


def write_dataset(folder: Path, content) -> Path:
    """A dataset file beside one good image ``a.png``; ``content`` is JSON-dumped unless it is bytes or str."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (56, 56), "white").save(folder / "a.png")
    path = folder / "data.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def data_overrides(path: Path) -> tuple[str, str]:
    return f"dataset.json={path}", f"dataset.image_dir={path.parent}"


DATASET_CASES = {
    "not_json": ("{not json at all", ["neither JSON nor JSON lines", "data.json", "JSON list"]),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", ["is not text", "data.json"]),
    "not_a_list": ({"image": "a.png", "problem": "p"}, ["must hold a JSON list of samples, not a dict"]),
    "empty_list": ([], ["holds no samples"]),
    "no_problem": ([{"image": "a.png"}], ["sample 0 of", "no 'problem' field"]),
    "no_image": ([{"problem": "p"}], ["sample 0 of", "no 'image' field"]),
    "image_not_path": ([{"image": 5, "problem": "p"}], ["'image' must be a path or a list of paths, not 5"]),
    "image_list_of_numbers": ([{"image": [1, 2], "problem": "p"}], ["'image' must be a path", "[1, 2]"]),
    "image_missing": ([{"image": "gone.png", "problem": "p"}], ["gone.png does not exist", "dataset.image_dir"]),
    "image_corrupt": ([{"image": "bad.png", "problem": "p"}], ["bad.png cannot be read", "PNG or JPEG"]),
    "too_many_images": ([{"image": ["a.png"] * 3, "problem": "p"}], ["has 3 images but max_image_num=2"]),
    "sample_out_of_range": ([{"image": "a.png", "problem": "p"}] * 2, ["sample_idx=7 is out of range", "2 samples"]),
}


@pytest.mark.parametrize("case", DATASET_CASES)
def test_bad_dataset(case, tmp_path, compose_cfg, caplog):
    content, expected = DATASET_CASES[case]
    path = write_dataset(tmp_path / "data", content)
    (tmp_path / "data" / "bad.png").write_bytes(b"this is no image")
    cfg = compose_cfg(*data_overrides(path), "sample_idx=7" if case == "sample_out_of_range" else "sample_idx=0")
    line = fails_cleanly(cfg, caplog)
    for part in expected:
        assert part in line


def test_missing_dataset_file_names_the_key(tmp_path, compose_cfg, caplog):
    line = fails_cleanly(compose_cfg(f"dataset.json={tmp_path}/nope.json"), caplog)
    assert line == f"dataset.json={tmp_path}/nope.json does not exist; point it at the benchmark JSON file"


def test_demo_sample_index_out_of_range_says_the_dataset_size(compose_cfg, caplog):
    size = len(json.loads((DEMO_DATA / "demo.json").read_text()))
    line = fails_cleanly(compose_cfg(f"sample_idx={size}"), caplog)
    assert f"sample_idx={size} is out of range" in line and f"has {size} samples" in line


@pytest.mark.parametrize("layer", [4, -5, 100])
def test_layer_out_of_range_says_the_number_of_layers(layer, compose_cfg, caplog, monkeypatch):
    monkeypatch.setattr(MODEL_LOAD, lambda *a, **k: pytest.fail("the model was loaded"))
    line = fails_cleanly(compose_cfg(f"layer_idx={layer}"), caplog)
    assert f"layer_idx={layer} is out of range: the model has 4 decoder layers (0..3, or -4..-1)" in line


def test_captured_layer_out_of_range_fails_before_the_model_loads(compose_cfg, caplog, monkeypatch):
    monkeypatch.setattr(MODEL_LOAD, lambda *a, **k: pytest.fail("the model was loaded"))
    line = fails_cleanly(compose_cfg("capture.layers=[1,9]"), caplog)
    assert "layer_idx=9 is out of range: the model has 4 decoder layers" in line


def test_declared_layers_read_from_the_text_config_or_the_top_level(tmp_path):
    from attnviz.models.checkpoint import declared_num_layers

    config = {"num_hidden_layers": 28, "text_config": {"num_hidden_layers": 32}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert declared_num_layers(tmp_path) == 32  # the language model's, as the loaded model reports it
    (tmp_path / "config.json").write_text(json.dumps({"num_hidden_layers": 28}))
    assert declared_num_layers(tmp_path) == 28
    (tmp_path / "config.json").write_text("{not json")
    assert declared_num_layers(tmp_path) is None  # the model load reports a broken config.json itself
    assert declared_num_layers(tmp_path / "missing") is None


def test_unset_mandatory_key(compose_cfg, caplog):
    line = fails_cleanly(compose_cfg("model.path=???"), caplog)
    assert line.startswith("model.path is not set; pass model.path=")


def test_zero_new_tokens_fails_before_the_model_loads(compose_cfg, caplog, monkeypatch):
    monkeypatch.setattr(MODEL_LOAD, lambda *a, **k: pytest.fail("the model was loaded"))
    line = fails_cleanly(compose_cfg("generation.max_new_tokens=0"), caplog)
    assert line == (
        "generation.max_new_tokens=0 would generate no tokens, so there is nothing to show; set it to 1 or more"
    )


def test_generation_that_returns_no_tokens(compose_cfg, caplog, monkeypatch):
    """A model whose generate stops before its first token (transformers has no setting for that: simulated)."""

    def no_tokens(model, inputs, recorder, gen_cfg):
        return []  # the generated ids (none)

    monkeypatch.setattr("attnviz.tracing.generate_with_capture", no_tokens)
    line = fails_cleanly(compose_cfg(*SMALL_VIDEO), caplog)
    assert line == "generation produced no tokens; raise generation.max_new_tokens"


def test_output_dir_under_a_file(tmp_path, compose_cfg, caplog):
    (tmp_path / "a_file").write_text("x")
    cfg = compose_cfg(f"output_dir={tmp_path}/a_file/run")
    line = fails_cleanly(cfg, caplog)
    assert line.startswith(f"cannot write {tmp_path}/a_file/run") and "set output_dir" in line


def test_read_only_output_dir_fails_before_the_model_loads(tmp_path, compose_cfg, caplog, monkeypatch):
    # Tests may run as root, where permission bits do not stop writes: refuse the write the way a read-only
    # folder does, at the one place a run first writes.
    run_dir = tmp_path / "locked"
    run_dir.mkdir()
    real_write = Path.write_bytes

    def read_only(self, data):
        if self.parent == run_dir:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", read_only)
    monkeypatch.setattr(MODEL_LOAD, lambda *a, **k: pytest.fail("the model was loaded"))
    line = fails_cleanly(compose_cfg(f"output_dir={run_dir}"), caplog)
    assert line.startswith(f"cannot write {run_dir}/") and "Permission denied; set output_dir" in line


def test_disk_full_while_encoding_leaves_no_video(tmp_path, compose_cfg, caplog, monkeypatch):
    """ffmpeg really writes into a full device: its temp name points at /dev/full."""
    start = attnviz.video._start_ffmpeg

    def full_disk(tmp, *args, **kwargs):
        tmp.unlink(missing_ok=True)
        tmp.symlink_to("/dev/full")
        return start(tmp, *args, **kwargs)

    monkeypatch.setattr(attnviz.video, "_start_ffmpeg", full_disk)
    line = fails_cleanly(compose_cfg(*SMALL_VIDEO), caplog)
    assert line.startswith("ffmpeg failed") and "No space left on device" in line
    assert f"check the free space in {tmp_path}" in line
    assert not list(tmp_path.glob(".*partial*")) and not (tmp_path / "metadata.json").exists()


def test_os_errors_name_the_file_and_the_fix(tmp_path):
    full = as_user_error(OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.npy")), tmp_path)
    assert str(full) == f"cannot write {tmp_path}/x.npy: No space left on device; free space on that disk or " \
        "set output_dir to a folder on another disk"
    other = as_user_error(PermissionError(errno.EACCES, "Permission denied", "/data/x.json"), tmp_path)
    assert str(other).startswith("file system error: /data/x.json: Permission denied; make it readable")
    assert as_user_error(ValueError("a bug"), tmp_path) is None  # bugs keep their traceback


def test_debug_shows_the_traceback(tmp_path, compose_cfg):
    with pytest.raises(AttnvizError, match="does not exist"):
        main(compose_cfg(f"dataset.json={tmp_path}/nope.json", "debug=true"))


@pytest.mark.parametrize(
    "override, message",
    [("no_such_key=1", "Key 'no_such_key' not in 'AppConfig'"), ("sample_idx=abc", "could not be converted"),
     ("video.fps=fast", "could not be converted"), ("model.weights=x", "Key 'weights' not in 'ModelConfig'"),
     ("model.allow_pickle=maybe", "'maybe' is not a valid bool")],
)
def test_unknown_key_or_wrong_type_fails_at_compose_time(override, message, compose_cfg):
    with pytest.raises(ConfigCompositionException) as err:
        compose_cfg(override)
    assert message in str(err.value.__cause__ or err.value)


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(PROJECT_ROOT / "run.py"), *args, f"hydra.run.dir={tmp_path}/run"]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)


def test_cli_bad_dataset_is_one_error_line(tmp_path):
    result = _cli(tmp_path, f"dataset.json={tmp_path}/missing.json")
    output = result.stdout + result.stderr
    assert result.returncode == 2
    error_lines = [line for line in output.splitlines() if "ERROR" in line]
    assert len(error_lines) == 1 and error_lines[0].endswith(
        f"dataset.json={tmp_path}/missing.json does not exist; point it at the benchmark JSON file"
    )
    assert "Traceback" not in output
    assert_nothing_claims_completion(tmp_path / "run")


@pytest.mark.slow
def test_cli_unknown_key_is_hydras_message(tmp_path):
    result = _cli(tmp_path, "layer=3")
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Key 'layer' not in 'AppConfig'" in output and "Traceback" not in output
    assert not (tmp_path / "run").exists()  # composition fails before the run directory is made


@pytest.mark.slow
def test_cli_output_dir_not_writable(tmp_path):
    (tmp_path / "a_file").write_text("x")
    result = _cli(tmp_path, f"output_dir={tmp_path}/a_file/out")
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in output
    assert [line for line in output.splitlines() if "ERROR" in line][0].endswith(
        f"cannot write {tmp_path}/a_file/out: Not a directory; set output_dir (or hydra.run.dir) to a folder you "
        "can write"
    )


@pytest.mark.parametrize("mode", ["run", "multirun"])
def test_an_output_folder_below_a_file_is_one_line_before_anything_runs(tmp_path, mode):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    key = "hydra.run.dir" if mode == "run" else "hydra.sweep.dir"
    args = (["-m", "layer_idx=0,1"] if mode == "multirun" else []) + [f"{key}={blocker}/out"]
    result = subprocess.run([sys.executable, str(PROJECT_ROOT / "run.py"), *args], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 2
    assert output == f"error: cannot create the output folder {blocker}/out: Not a directory; set {key}" + (
        " (or output_dir)" if mode == "run" else "") + " to a folder you can write"
