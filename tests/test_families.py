"""Every family loads from its folder alone, with capture on its language model only, and runs end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import pytest
import torch
from PIL import Image, ImageDraw
from transformers import PaliGemmaConfig

from attnviz.config import PROJECT_ROOT
from attnviz.errors import AttnvizError
from attnviz.models import adapter_for, loading
from attnviz.models.loading import load_model, resolve_attn_implementation, resolve_dtype
from attnviz.outputs import read_metadata
from attnviz.trace import ImageGeometry, load_trace
from tests.twins import FAMILIES

FAMILY_NAMES = {
    "qwen2_vl": "Qwen2-VL",
    "qwen2_5_vl": "Qwen2.5-VL",
    "qwen3_vl": "Qwen3-VL",
    "llava": "LLaVA-1.5",
    "llava_next": "LLaVA-NeXT",
    "llava_onevision": "LLaVA-OneVision",
    "text": "text",
    "gemma3": "Gemma 3",
    "internvl": "InternVL3",
    "idefics3": "Idefics3",
    "smolvlm": "SmolVLM",
    "mistral3": "Mistral 3",
    "glm4v": "GLM-4.1V",
}
CPU = torch.device("cpu")
CUDA = torch.device("cuda")


@pytest.mark.parametrize("family", FAMILIES)
def test_family_chosen_from_the_folder_and_capture_on_the_language_model_only(twin_dir, family):
    loaded = load_model(str(twin_dir(family)), device="cpu", attn_implementation="auto")
    assert loaded.adapter.family == FAMILY_NAMES[family]
    config = loaded.model.config
    if family == "text":
        assert config._attn_implementation == "attnviz_sdpa" and loaded.adapter.image_token_id() is None
    else:
        assert config.text_config._attn_implementation == "attnviz_sdpa"
        assert config.vision_config._attn_implementation == "sdpa"
        assert loaded.adapter.image_token_id() is not None
    assert loaded.num_layers == 2 and loaded.dtype == torch.float32


def test_unsupported_architecture_is_one_line_naming_the_supported_ones():
    with pytest.raises(AttnvizError) as err:
        adapter_for(None, PaliGemmaConfig())
    message = str(err.value)
    assert "'paligemma'" in message and "\n" not in message
    for model_type in ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "llava", "llava_next", "llava_onevision", "causal LM"):
        assert model_type in message


def test_text_model_refuses_images(twin_dir):
    loaded = load_model(str(twin_dir("text")), device="cpu")
    prompt = loaded.adapter.build_prompt("Where?", 1)
    assert prompt.endswith("<|im_start|>assistant\n") and "Where?" in prompt
    with pytest.raises(AttnvizError, match="text-only"):
        loaded.adapter.prepare_inputs(prompt, [Image.new("RGB", (56, 56))])


def test_attention_auto_is_sdpa_without_flash_attention(monkeypatch):
    monkeypatch.setattr(loading, "is_flash_attn_2_available", lambda: False)
    assert resolve_attn_implementation("auto", CUDA, torch.bfloat16) == "sdpa"
    with pytest.raises(AttnvizError, match="flash-attn"):
        resolve_attn_implementation("flash_attention_2", CUDA, torch.bfloat16)
    with pytest.raises(AttnvizError, match="model.attn_implementation"):
        resolve_attn_implementation("fast", CPU, torch.float32)


def test_attention_auto_is_flash_attention_on_cuda_in_half_precision(monkeypatch):
    monkeypatch.setattr(loading, "is_flash_attn_2_available", lambda: True)
    assert resolve_attn_implementation("auto", CUDA, torch.bfloat16) == "flash_attention_2"
    assert resolve_attn_implementation("auto", CUDA, torch.float32) == "sdpa"
    assert resolve_attn_implementation("auto", CPU, torch.float16) == "sdpa"


def test_preset_dtype_applies_on_cuda_only():
    saved = PaliGemmaConfig(dtype="float16")
    assert resolve_dtype("auto", CPU, saved, "bfloat16") == torch.float32
    assert resolve_dtype("auto", CUDA, saved, "bfloat16") == torch.bfloat16
    assert resolve_dtype("auto", CUDA, saved, None) == torch.float16
    assert resolve_dtype("float32", CUDA, saved, "bfloat16") == torch.float32
    with pytest.raises(AttnvizError, match="model.dtype"):
        resolve_dtype("auto", CUDA, saved, "fp8")


def _dataset(folder: Path) -> Path:
    """Two samples: one with a wide and a tall image (a red dot on a grey road), one with no image."""
    for name, size, dot in (("wide.png", (120, 80), (90, 20)), ("tall.png", (70, 110), (20, 80))):
        image = Image.new("RGB", size, (235, 235, 225))
        draw = ImageDraw.Draw(image)
        draw.line([(0, size[1] // 2), (size[0], size[1] // 3)], fill=(120, 120, 120), width=4)
        draw.ellipse([dot[0] - 6, dot[1] - 6, dot[0] + 6, dot[1] + 6], fill=(220, 30, 30))
        image.save(folder / name)
    samples = [
        {"id": "two", "problem": "Where is the red marker?", "image": ["wide.png", "tall.png"]},
        {"id": "none", "problem": "Say where a red marker could be.", "image": []},
    ]
    (folder / "data.json").write_text(json.dumps(samples))
    return folder / "data.json"


def _frame_count(path: Path) -> int:
    reader = imageio_ffmpeg.read_frames(str(path))
    next(reader)
    return sum(1 for _ in reader)


def _cli(tmp_path: Path, *args: str) -> None:
    command = [sys.executable, str(PROJECT_ROOT / "run.py"), *args]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def _check_run(run_dir: Path, family: str, n_images: int) -> None:
    meta = read_metadata(run_dir)
    assert meta["status"] == "complete" and meta["model"]["family"] == FAMILY_NAMES[family]
    assert meta["layer"] == 1 and meta["captured_layers"] == [0, 1]
    assert 1 <= meta["n_generated"] == meta["n_frames"] == _frame_count(run_dir / meta["files"]["video"])
    trace = load_trace(run_dir / "trace")
    assert [ImageGeometry(**g) for g in meta["images"]] == trace.images
    assert len(trace.images) == n_images
    image_tokens = {p for p, kind in enumerate(trace.token_kinds) if kind == "image"}
    for g in trace.images:
        assert set(g.positions) <= image_tokens and g.n_tokens == g.grid_h * g.grid_w
    for step in range(trace.n_steps):  # every row is a distribution over the tokens before it
        assert abs(float(trace.row(1, step).sum()) - 1.0) < 1e-2


def _buildable(twin_dir, family: str) -> bool:
    """False for a twin this environment cannot build (SmolVLM's processor without num2words): the other families
    still run."""
    try:
        twin_dir(family)
    except pytest.skip.Exception:
        return False
    return True


COMMON = ("layer_idx=-1", "capture.layers=all", "device=cpu", "generation.max_new_tokens=3", "video.width=320",
          "video.height=180")


@pytest.mark.slow
def test_cli_end_to_end_every_family(tmp_path, twin_dir):
    """One multirun over every vision family's folder, each with two images and with none; one run of the text
    model."""
    data = _dataset(tmp_path)
    vision = [f for f in FAMILIES if f != "text" and _buildable(twin_dir, f)]
    folders = ",".join(str(twin_dir(f)) for f in vision)
    dataset = (f"dataset.json={data}", f"dataset.image_dir={tmp_path}")
    _cli(tmp_path, "-m", f"model.path={folders}", *dataset, "sample_idx=0,1", *COMMON, f"hydra.sweep.dir={tmp_path}/m")
    runs = {}
    for run_dir in (d for d in (tmp_path / "m").iterdir() if (d / "metadata.json").is_file()):
        config = read_metadata(run_dir)["config"]
        runs[config["model"]["path"], config["sample_idx"]] = run_dir
    for family in vision:
        for sample, n_images in ((0, 2), (1, 0)):  # "two": a wide and a tall image; "none": text only
            _check_run(runs[str(twin_dir(family)), sample], family, n_images)
    _cli(tmp_path, f"model.path={twin_dir('text')}", *dataset, "sample_idx=1", *COMMON, f"hydra.run.dir={tmp_path}/t")
    _check_run(tmp_path / "t", "text", 0)
