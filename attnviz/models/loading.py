"""Load a checkpoint folder (model + processor) with the capture wrapper as the language model's attention."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor
from transformers.utils import is_flash_attn_2_available

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


def resolve_dtype(dtype: str, device: torch.device, config: Any, cuda_dtype: str | None = None) -> torch.dtype:
    """``auto``: float32 on CPU, where half precision is slow; on CUDA ``cuda_dtype`` (the preset's) or else
    the checkpoint's saved dtype."""
    if dtype in DTYPES:
        return DTYPES[dtype]
    if dtype != "auto":
        raise AttnvizError(f"dtype must be auto, {', '.join(DTYPES)}; not {dtype!r}")
    if device.type == "cpu":
        return torch.float32
    if cuda_dtype not in (None, "auto"):
        if cuda_dtype not in DTYPES:
            raise AttnvizError(f"model.dtype must be auto, {', '.join(DTYPES)} or null; not {cuda_dtype!r}")
        return DTYPES[cuda_dtype]
    saved = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    return saved if isinstance(saved, torch.dtype) else DTYPES.get(str(saved), torch.bfloat16)


def resolve_attn_implementation(name: str, device: torch.device, dtype: torch.dtype) -> str:
    """``auto``: flash_attention_2 when it is installed and can run (CUDA, half precision), else sdpa."""
    flash_ok = is_flash_attn_2_available() and device.type == "cuda" and dtype in (torch.float16, torch.bfloat16)
    if name == "auto":
        return "flash_attention_2" if flash_ok else "sdpa"
    if name == "flash_attention_2" and not flash_ok:
        raise AttnvizError(
            "model.attn_implementation=flash_attention_2 needs the flash-attn package, a CUDA device and "
            "float16/bfloat16; use auto or sdpa"
        )
    if name not in ("sdpa", "eager", "flash_attention_2"):
        raise AttnvizError(f"model.attn_implementation must be auto, sdpa, eager or flash_attention_2; not {name!r}")
    return name


def attention_selection(config: Any, text_only: bool, capture_name: str, inner: str) -> str | dict[str, str]:
    """Capture in the language model only; every other sub-model (vision tower, ...) runs ``inner`` as is."""
    if text_only:
        return capture_name
    sub_configs = list(getattr(config, "sub_configs", {}) or {})
    if "text_config" not in sub_configs:
        raise AttnvizError(f"{config.model_type}: no text_config among its sub-configs {sub_configs}; unsupported")
    return {key: capture_name if key == "text_config" else inner for key in sub_configs}


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
    cuda_dtype: str | None = None,
) -> LoadedModel:
    """Model + processor from ``path``; the text decoder's attention is wrapped for capture.

    The family (and so the adapter, the auto class and where capture goes) comes from the checkpoint's config.
    """
    folder = check_model_dir(path)
    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device, config, cuda_dtype)
    processor = AutoProcessor.from_pretrained(folder, local_files_only=True, **(processor_kwargs or {}))
    adapter = adapter_for(processor, config)
    inner = resolve_attn_implementation(attn_implementation, torch_device, torch_dtype)
    capture_name = register_capture(inner)
    log.info("loading %s (%s) on %s as %s, attention %s", folder, adapter.family, torch_device, torch_dtype, inner)
    auto_class = AutoModelForCausalLM if adapter.text_only else AutoModelForImageTextToText
    model = auto_class.from_pretrained(
        folder,
        dtype=torch_dtype,
        attn_implementation=attention_selection(config, adapter.text_only, capture_name, inner),
        local_files_only=True,
        use_safetensors=True,
    )
    model.to(torch_device).eval()
    return LoadedModel(model, processor, adapter, torch_device, torch_dtype, str(folder))
