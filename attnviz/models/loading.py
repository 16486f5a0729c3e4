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
from attnviz.errors import AttnvizError, one_line
from attnviz.models import ModelAdapter, adapter_class
from attnviz.models.checkpoint import check_checkpoint
from attnviz.schema import AppConfig, ModelConfig

log = logging.getLogger(__name__)
DEFAULTS = AppConfig()  # the run's device and dtype defaults, as the config states them
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


def resolve_dtype(dtype: str, device: torch.device, config: Any, model_dtype: str | None = None) -> torch.dtype:
    """The run's ``dtype``; ``auto``: float32 on CPU, where half precision is slow; on CUDA ``model_dtype``
    (``model.dtype``, the preset's) or else the checkpoint's saved dtype."""
    if dtype in DTYPES:
        return DTYPES[dtype]
    if dtype != "auto":
        raise AttnvizError(f"dtype must be auto, {', '.join(DTYPES)}; not {dtype!r}")
    if device.type == "cpu":
        return torch.float32
    if model_dtype not in (None, "auto"):
        if model_dtype not in DTYPES:
            raise AttnvizError(f"model.dtype must be auto, {', '.join(DTYPES)} or null; not {model_dtype!r}")
        return DTYPES[model_dtype]
    saved = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    return saved if isinstance(saved, torch.dtype) else DTYPES.get(str(saved), torch.bfloat16)


def resolve_attn_implementation(
    name: str, device: torch.device, dtype: torch.dtype, adapter: type[ModelAdapter] | None = None
) -> str:
    """``auto``: flash_attention_2 when it is installed and can run (CUDA, half precision) and the family's mask
    survives it (``adapter.flash_attention``), else sdpa."""
    flash_ok = is_flash_attn_2_available() and device.type == "cuda" and dtype in (torch.float16, torch.bfloat16)
    if name == "auto":
        return "flash_attention_2" if flash_ok and (adapter is None or adapter.flash_attention) else "sdpa"
    if name == "flash_attention_2" and adapter is not None and not adapter.flash_attention:
        raise AttnvizError(
            f"model.attn_implementation=flash_attention_2: {adapter.family} cannot use it (FlashAttention drops "
            "the mask its image tokens need); use auto or sdpa"
        )
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


def load_processor(folder: Path, path: str, trust_remote_code: bool, kwargs: dict[str, Any] | None) -> Any:
    try:
        return AutoProcessor.from_pretrained(
            folder, local_files_only=True, trust_remote_code=trust_remote_code, **(kwargs or {})
        )
    except ImportError as err:  # a processor that needs an optional package (SmolVLM's: num2words)
        raise AttnvizError(
            f"model.path={path}: the processor needs a package that is not installed ({one_line(str(err))[:200]})"
        ) from err
    except (OSError, ValueError) as err:  # transformers' words for missing or unreadable processor files
        raise AttnvizError(
            f"model.path={path}: the processor cannot be loaded ({one_line(str(err))[:300]}); "
            + (
                "it needs the checkpoint's own code: set model.trust_remote_code=true if you have read that code"
                if "trust_remote_code" in str(err)
                else "copy the processor files from the base model's folder"
            )
        ) from err


def processor_kwargs(model_cfg: ModelConfig) -> dict[str, int]:
    """The processor's pixel limits the settings give (the checkpoint's own otherwise)."""
    limits = {"min_pixels": model_cfg.min_pixels, "max_pixels": model_cfg.max_pixels}
    return {k: int(v) for k, v in limits.items() if v is not None}


def load_model(
    model: ModelConfig | str, device: str = DEFAULTS.device, dtype: str = DEFAULTS.dtype, **settings: Any
) -> LoadedModel:
    """Model + processor from a checkpoint folder; the text decoder's attention is wrapped for capture.

    ``model``: the model settings, or a folder path with any :class:`ModelConfig` field as a keyword
    (``attn_implementation="sdpa"``, ``allow_pickle=True``, ...). The family (and so the adapter, the auto class
    and where capture goes) comes from the checkpoint's config.
    """
    cfg = model if isinstance(model, ModelConfig) else ModelConfig(path=str(model), **settings)
    path = cfg.path
    ckpt = check_checkpoint(path, allow_pickle=cfg.allow_pickle, trust_remote_code=cfg.trust_remote_code)
    folder, remote_code = ckpt.folder, ckpt.trust_remote_code
    config = AutoConfig.from_pretrained(folder, local_files_only=True, trust_remote_code=remote_code)
    try:
        adapter_cls = adapter_class(config)  # before the processor: an unsupported family fails first
    except AttnvizError as err:
        raise AttnvizError(f"model.path={path}: {err}") from None
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device, config, cfg.dtype)
    processor = load_processor(folder, path, remote_code, processor_kwargs(cfg))
    adapter = adapter_cls(processor, config)
    inner = resolve_attn_implementation(str(cfg.attn_implementation), torch_device, torch_dtype, adapter_cls)
    capture_name = register_capture(inner)
    log.info("loading %s (%s) on %s as %s, attention %s", folder, adapter.family, torch_device, torch_dtype, inner)
    auto_class = AutoModelForCausalLM if adapter.text_only else AutoModelForImageTextToText
    loaded = auto_class.from_pretrained(
        folder,
        dtype=torch_dtype,
        attn_implementation=attention_selection(config, adapter.text_only, capture_name, inner),
        local_files_only=True,  # a local folder only: nothing is ever looked up on a hub
        use_safetensors=ckpt.use_safetensors,
        trust_remote_code=remote_code,
    )
    loaded.to(torch_device).eval()
    return LoadedModel(loaded, processor, adapter, torch_device, torch_dtype, str(folder))
