"""Model adapters, one per family, chosen from the checkpoint's config."""

from __future__ import annotations

from typing import Any

from attnviz.errors import AttnvizError
from attnviz.models.base import ModelAdapter
from attnviz.models.qwen2_vl import Qwen2VLAdapter

ADAPTERS: tuple[type[ModelAdapter], ...] = (Qwen2VLAdapter,)


def supported_model_types() -> list[str]:
    return sorted(t for adapter in ADAPTERS for t in adapter.model_types)


def adapter_for(processor: Any, config: Any) -> ModelAdapter:
    """The adapter whose ``model_types`` include ``config.model_type``."""
    model_type = getattr(config, "model_type", None)
    for adapter in ADAPTERS:
        if model_type in adapter.model_types:
            return adapter(processor, config)
    raise AttnvizError(
        f"unsupported model type {model_type!r}; supported: {', '.join(supported_model_types())}"
    )


__all__ = ["ADAPTERS", "ModelAdapter", "adapter_for", "supported_model_types"]
