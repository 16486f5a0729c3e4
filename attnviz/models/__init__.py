"""Model adapters, one per family, chosen from the checkpoint's config."""

from __future__ import annotations

from typing import Any

from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from attnviz.errors import AttnvizError
from attnviz.models.base import ModelAdapter
from attnviz.models.llava import LlavaAdapter
from attnviz.models.llava_next import LlavaNextAdapter, LlavaOnevisionAdapter
from attnviz.models.qwen2_vl import Qwen2VLAdapter, Qwen3VLAdapter, Qwen25VLAdapter
from attnviz.models.text import TextAdapter

ADAPTERS: tuple[type[ModelAdapter], ...] = (
    Qwen2VLAdapter,
    Qwen25VLAdapter,
    Qwen3VLAdapter,
    LlavaAdapter,
    LlavaNextAdapter,
    LlavaOnevisionAdapter,
)


def supported_model_types() -> list[str]:
    return sorted(t for adapter in ADAPTERS for t in adapter.model_types)


def is_text_causal_lm(config: Any) -> bool:
    """A decoder-only text model transformers can load as a causal LM (no vision tower)."""
    model_type = getattr(config, "model_type", None)
    has_vision = getattr(config, "vision_config", None) is not None
    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and not has_vision


def adapter_for(processor: Any, config: Any) -> ModelAdapter:
    """The adapter whose ``model_types`` include ``config.model_type``; text-only causal LMs share one."""
    model_type = getattr(config, "model_type", None)
    for adapter in ADAPTERS:
        if model_type in adapter.model_types:
            return adapter(processor, config)
    if is_text_causal_lm(config):
        return TextAdapter(processor, config)
    raise AttnvizError(
        f"unsupported model type {model_type!r}; supported: {', '.join(supported_model_types())} "
        "and text-only causal LMs (llama, mistral, qwen2, qwen3, ...)"
    )


__all__ = ["ADAPTERS", "ModelAdapter", "adapter_for", "is_text_causal_lm", "supported_model_types"]
