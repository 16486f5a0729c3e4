"""Text-only causal language models (Qwen2, Llama, Mistral, ...): the text panel only.

The prompt is the tokenizer's chat template with the question as a plain string (text chat templates expect string
contents), or the bare question for a base model without a template. A sample with images is refused: a text model
cannot see them, and silently dropping them would show attention over a prompt the user did not ask for.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from attnviz.errors import AttnvizError
from attnviz.models.base import ModelAdapter
from attnviz.trace import ImageGeometry


class TextAdapter(ModelAdapter):
    family = "text"
    model_types = ()  # any config the causal-LM auto class knows and that has no vision tower: see adapter_for
    text_only = True

    def build_prompt(self, question: str, n_images: int) -> str:
        if getattr(self.tokenizer, "chat_template", None) is None:
            return question
        messages = [{"role": "user", "content": question}]
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def prepare_inputs(self, prompt: str, images: list[Image.Image]) -> dict[str, Any]:
        if images:
            raise AttnvizError(
                f"the model is text-only ({self.config.model_type}) but the sample has {len(images)} image(s); "
                "pick a sample with \"image\": [] or a vision-language checkpoint"
            )
        self.image_sizes = []
        # the chat template already wrote any BOS token: do not add another
        special = getattr(self.tokenizer, "chat_template", None) is None
        return dict(self.tokenizer([prompt], return_tensors="pt", add_special_tokens=special))

    def image_token_id(self) -> int | None:
        return None

    def image_geometry(self, inputs: dict[str, Any]) -> list[ImageGeometry]:
        return []
