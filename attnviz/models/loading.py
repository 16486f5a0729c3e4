"""Load a checkpoint folder (model + processor) with the capture wrapper as the language model's attention."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

from attnviz.capture import register_capture
from attnviz.errors import AttnvizError
from attnviz.models import ModelAdapter, adapter_for

log = logging.getLogger(__name__)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    model: Any
    processor: Any
    adapter: ModelAdapter
    device: torch.device
    dtype: torch.dtype
    path: str

    @property
    def num_layers(self) -> int:
        text_config = getattr(self.model.config, "text_config", self.model.config)
        return int(text_config.num_hidden_layers)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AttnvizError(f"device={device} was asked for but no CUDA device is available; use device=cpu")
    if not (device == "cpu" or device.startswith("cuda")):
        raise AttnvizError(f"device must be auto, cpu, cuda or cuda:N, not {device!r}")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device, config: Any) -> torch.dtype:
    """``auto``: the checkpoint's dtype on CUDA; float32 on CPU, where half precision is slow."""
    if dtype in DTYPES:
        return DTYPES[dtype]
    if dtype != "auto":
        raise AttnvizError(f"dtype must be auto, {', '.join(DTYPES)}; not {dtype!r}")
    if device.type == "cpu":
        return torch.float32
    saved = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    return saved if isinstance(saved, torch.dtype) else DTYPES.get(str(saved), torch.bfloat16)


def check_model_dir(path: str) -> Path:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise AttnvizError(f"model.path={path} is not a folder; point it at a local checkpoint folder")
    if not (folder / "config.json").is_file():
        raise AttnvizError(f"model.path={path} has no config.json; is it a transformers checkpoint folder?")
    if not any(folder.glob("*.safetensors")):
        raise AttnvizError(f"model.path={path} holds no *.safetensors weights; convert the checkpoint")
    return folder


def load_model(
    path: str,
    device: str = "auto",
    dtype: str = "auto",
    attn_implementation: str = "sdpa",
    processor_kwargs: dict[str, Any] | None = None,
) -> LoadedModel:
    """Model + processor from ``path``; the text decoder's attention is wrapped for capture."""
    folder = check_model_dir(path)
    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device, config)
    processor = AutoProcessor.from_pretrained(folder, local_files_only=True, **(processor_kwargs or {}))
    adapter = adapter_for(processor, config)
    capture_name = register_capture(attn_implementation)
    log.info("loading %s (%s) on %s as %s", folder, adapter.family, torch_device, torch_dtype)
    model = AutoModelForImageTextToText.from_pretrained(
        folder,
        dtype=torch_dtype,
        attn_implementation={"text_config": capture_name, "vision_config": attn_implementation},
        local_files_only=True,
        use_safetensors=True,
    )
    model.to(torch_device).eval()
    return LoadedModel(model, processor, adapter, torch_device, torch_dtype, str(folder))
