"""Llama 3.2 Vision (mllama) is refused in one line that says why: its images enter through cross-attention layers,
so the self-attention rows attnviz captures hold no image tokens."""

from __future__ import annotations

import json

import pytest
from transformers import MllamaConfig

from attnviz.errors import AttnvizError
from attnviz.models import adapter_class
from attnviz.models.loading import load_model


def test_mllama_config_is_refused_with_the_reason():
    with pytest.raises(AttnvizError) as err:
        adapter_class(MllamaConfig())
    message = str(err.value)
    assert "mllama" in message and "cross-attention" in message and "\n" not in message


def test_an_mllama_folder_fails_before_anything_loads(tmp_path):
    """The checkpoint's config alone decides it: no weights or processor are read (the files here are empty)."""
    MllamaConfig().to_json_file(tmp_path / "config.json")
    for name in ("model.safetensors", "tokenizer.json", "preprocessor_config.json"):
        (tmp_path / name).write_text("" if name.endswith(".safetensors") else json.dumps({}))
    with pytest.raises(AttnvizError, match=r"model\.path=.*cross-attention layers") as err:
        load_model(str(tmp_path), device="cpu")
    assert "\n" not in str(err.value)
