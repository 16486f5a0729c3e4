"""The adapter interface: everything attnviz needs to know about one model family."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from PIL import Image

from attnviz.trace import ImageGeometry


def chat_prompt(processor: Any, question: str, n_images: int) -> str:
    """The chat-templated prompt text: every image, then the question, then the generation prompt."""
    content: list[dict[str, str]] = [{"type": "image"} for _ in range(n_images)]
    content.append({"type": "text", "text": question})
    messages = [{"role": "user", "content": content}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


class ModelAdapter(ABC):
    """One small adapter per family: prompt, inputs, image-token geometry."""

    family: str = ""
    model_types: tuple[str, ...] = ()  # config.model_type values this adapter handles
    text_only: bool = False  # loaded with AutoModelForCausalLM instead of AutoModelForImageTextToText

    def __init__(self, processor: Any, config: Any):
        self.processor = processor
        self.config = config
        self.tokenizer = getattr(processor, "tokenizer", processor)
        # (width, height) of the images of the latest prepare_inputs call: families that crop or pad need the
        # caller's image size to say which part of it the grid covers
        self.image_sizes: list[tuple[int, int]] = []

    def build_prompt(self, question: str, n_images: int) -> str:
        return chat_prompt(self.processor, question, n_images)

    def prepare_inputs(self, prompt: str, images: list[Image.Image]) -> dict[str, Any]:
        """Processor output (tensors, batch of one) ready for ``model.generate``."""
        self.image_sizes = [image.size for image in images]
        return dict(self.processor(text=[prompt], images=images or None, return_tensors="pt"))

    def image_token_id(self) -> int | None:
        """Id of the placeholder token that stands for image patches (None for text-only models); every
        supported vision family names it ``image_token_id`` in its config."""
        return getattr(self.config, "image_token_id", None)

    @abstractmethod
    def image_geometry(self, inputs: dict[str, Any]) -> list[ImageGeometry]:
        """Per image: where its tokens start and the grid they tile, from the processor's output."""
