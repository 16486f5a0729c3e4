"""Checkpoints: clear lines for folders that cannot work, safetensors only, no checkpoint code, no hub."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import huggingface_hub
import pytest
import torch
import transformers.utils.hub
from safetensors.torch import load_file

from attnviz.errors import AttnvizError
from attnviz.models.loading import load_model
from tests.conftest import DEMO_MODEL

MARKER = "checkpoint_code_ran"
# Python a malicious checkpoint ships: importing it leaves a marker file, so a test sees whether it ran.
SPY_CODE = f"""
from pathlib import Path
Path(__file__).with_name("{MARKER}").write_text("ran")
from transformers import PretrainedConfig
class MyConfig(PretrainedConfig):
    model_type = "my_vl"
"""


def demo_copy(folder: Path, drop: tuple[str, ...] = (), **config_changes) -> Path:
    shutil.copytree(DEMO_MODEL, folder)
    for name in drop:
        (folder / name).unlink()
    if config_changes:
        config = json.loads((folder / "config.json").read_text())
        config.update(config_changes)
        (folder / "config.json").write_text(json.dumps(config))
    return folder


def load_error(folder: Path | str, **kwargs) -> str:
    with pytest.raises(AttnvizError) as err:
        load_model(str(folder), device="cpu", **kwargs)
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    "drop, changes, expected",
    [
        (("model.safetensors",), {}, "holds no weights (*.safetensors); copy the weight files"),
        (("processor_config.json",), {}, "has no processor config (processor_config.json or preprocessor_config"),
        (("tokenizer.json", "tokenizer_config.json"), {}, "has no tokenizer files (tokenizer.json"),
        (("config.json",), {}, "has no config.json; point it at a transformers checkpoint folder"),
        ((), {"model_type": "bert"}, "unsupported model type 'bert'; supported: gemma3, glm4v"),
        ((), {"model_type": "foo_vl"}, "unsupported model type 'foo_vl' (config.json, unknown to transformers"),
    ],
)
def test_folders_that_cannot_work(tmp_path, drop, changes, expected):
    folder = demo_copy(tmp_path / "ckpt", drop, **changes)
    message = load_error(folder)
    assert message.startswith(f"model.path={folder}") and expected in message


def test_missing_path_and_hub_ids(tmp_path):
    assert load_error(tmp_path / "nope") == (
        f"model.path={tmp_path}/nope is not a folder; point it at a local checkpoint folder "
        "(config.json, *.safetensors, processor files)"
    )
    message = load_error("Qwen/Qwen2-VL-2B-Instruct")
    assert "attnviz loads local folders only: download it first (hf download Qwen/Qwen2-VL-2B-Instruct" in message


def test_pickle_weights_only_with_allow_pickle(tmp_path):
    folder = demo_copy(tmp_path / "ckpt")
    weights = load_file(folder / "model.safetensors")
    torch.save(weights, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    message = load_error(folder)
    assert "holds only pickle weights (pytorch_model.bin), which can run code when loaded" in message
    assert "set model.allow_pickle=true if you trust this checkpoint" in message
    loaded = load_model(str(folder), device="cpu", allow_pickle=True)
    loaded_embed = loaded.model.get_input_embeddings().weight  # checkpoint key names differ from the module's
    saved_embed = next(v for k, v in weights.items() if k.endswith("embed_tokens.weight"))
    assert torch.equal(loaded_embed, saved_embed)


def test_safetensors_preferred_even_when_pickle_files_exist(tmp_path, monkeypatch):
    folder = demo_copy(tmp_path / "ckpt")
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")  # torch.load would fail on it
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("a pickle file was loaded"))
    assert load_model(str(folder), device="cpu").adapter.family == "Qwen2-VL"


def _remote_code_folder(tmp_path: Path, model_type: str) -> Path:
    folder = demo_copy(tmp_path / "ckpt", model_type=model_type, auto_map={"AutoConfig": "configuration_my.MyConfig"})
    (folder / "configuration_my.py").write_text(SPY_CODE)
    return folder


def test_checkpoint_code_is_refused_unless_allowed(tmp_path):
    folder = _remote_code_folder(tmp_path, "my_vl")
    message = load_error(folder)
    assert "asks to run the checkpoint's own Python code (auto_map)" in message
    assert "unless model.trust_remote_code=true" in message
    allowed = load_error(folder, trust_remote_code=True)  # allowed, but no adapter serves such a type
    assert "unsupported model type 'my_vl'" in allowed
    assert not (folder / MARKER).exists()


def test_checkpoint_code_is_not_run_for_a_built_in_type(tmp_path):
    folder = _remote_code_folder(tmp_path, "qwen2_vl")
    assert load_model(str(folder), device="cpu").adapter.family == "Qwen2-VL"
    assert not (folder / MARKER).exists()


def test_a_local_folder_is_never_sent_to_a_hub(tmp_path, monkeypatch):
    """Online mode (HF_HUB_OFFLINE unset), with every hub download and every socket connection failing."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    calls: list[str] = []

    def no_hub(name):
        def refuse(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} called with {args} {kwargs}")

        return refuse

    for module in (huggingface_hub, huggingface_hub.file_download, transformers.utils.hub):
        for name in ("hf_hub_download", "snapshot_download", "get_hf_file_metadata", "model_info"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, no_hub(name))
    monkeypatch.setattr(socket.socket, "connect", no_hub("socket.connect"))
    assert load_model(str(demo_copy(tmp_path / "ckpt")), device="cpu").adapter.family == "Qwen2-VL"
    assert "local folders only" in load_error("someone/some-model")
    assert calls == []
