"""A twin's adapter and an image's geometry through it: what the geometry, chat-format and family tests share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image
from transformers import AutoConfig, AutoProcessor

from attnviz.models import adapter_for


def twin_adapter(folder: Path) -> Any:
    """The adapter of a twin's folder, built from its offline processor and config (no weights loaded)."""
    processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
    return adapter_for(processor, AutoConfig.from_pretrained(folder, local_files_only=True))


def adapter_geometry(adapter: Any, images: list[Image.Image]) -> tuple[dict[str, Any], list]:
    """(processor inputs, per-image geometry) of a one-question prompt over ``images``."""
    inputs = adapter.prepare_inputs(adapter.build_prompt("Where?", len(images)), images)
    return inputs, adapter.image_geometry(inputs, [image.size for image in images])
