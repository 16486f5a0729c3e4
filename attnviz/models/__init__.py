"""Model adapters, one per family, chosen from the checkpoint's config."""

from __future__ import annotations

from typing import Any

from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from attnviz.errors import AttnvizError
from attnviz.models.base import ModelAdapter
from attnviz.models.gemma3 import Gemma3Adapter
from attnviz.models.idefics3 import Idefics3Adapter, SmolVLMAdapter
from attnviz.models.internvl import InternVLAdapter
from attnviz.models.llava import LlavaAdapter
from attnviz.models.llava_next import LlavaNextAdapter, LlavaOnevisionAdapter
from attnviz.models.mistral3 import Mistral3Adapter
from attnviz.models.qwen2_vl import Glm4vAdapter, Qwen2VLAdapter, Qwen3VLAdapter, Qwen25VLAdapter
from attnviz.models.text import TextAdapter

ADAPTERS: tuple[type[ModelAdapter], ...] = (
    Qwen2VLAdapter,
    Qwen25VLAdapter,
    Qwen3VLAdapter,
    LlavaAdapter,
    LlavaNextAdapter,
    LlavaOnevisionAdapter,
    Gemma3Adapter,
    InternVLAdapter,
    Idefics3Adapter,
    SmolVLMAdapter,
    Mistral3Adapter,
    Glm4vAdapter,
)

# Families attnviz refuses, and why: what their self-attention rows could show is not the picture they look at.
REFUSED: dict[str, str] = {
    "mllama": "Llama 3.2 Vision (mllama) is not supported: its images enter through cross-attention layers, so the "
    "self-attention row has no image tokens to show",
}


def supported_model_types() -> list[str]:
    return sorted(t for adapter in ADAPTERS for t in adapter.model_types)


def is_text_causal_lm(config: Any) -> bool:
    """A decoder-only text model transformers can load as a causal LM (no vision tower)."""
    model_type = getattr(config, "model_type", None)
    has_vision = getattr(config, "vision_config", None) is not None
    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and not has_vision


def adapter_class(config: Any) -> type[ModelAdapter]:
    """The adapter whose ``model_types`` include ``config.model_type``; text-only causal LMs share one."""
    model_type = getattr(config, "model_type", None)
    if model_type in REFUSED:
        raise AttnvizError(REFUSED[model_type])
    for adapter in ADAPTERS:
        if model_type in adapter.model_types:
            return adapter
    if is_text_causal_lm(config):
        return TextAdapter
    raise AttnvizError(f"unsupported model type {model_type!r}; supported: {supported_summary()}")


def supported_summary() -> str:
    return f"{', '.join(supported_model_types())} and text-only causal LMs (llama, mistral, qwen2, qwen3, ...)"


def adapter_for(processor: Any, config: Any) -> ModelAdapter:
    return adapter_class(config)(processor, config)


__all__ = [
    "ADAPTERS",
    "REFUSED",
    "ModelAdapter",
    "adapter_class",
    "adapter_for",
    "is_text_causal_lm",
    "supported_model_types",
    "supported_summary",
]
