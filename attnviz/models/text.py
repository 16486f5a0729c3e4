"""Text-only causal language models (Qwen2, Llama, Mistral, ...): the text panel only.

The prompt is the tokenizer's chat template with the question as a plain string (text chat templates expect string
contents), or the bare question for a base model without a template. A sample with images is refused: a text model
cannot see them, and silently dropping them would show attention over a prompt the user did not ask for.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from attnviz.chat import CHATML, LLAMA3, MISTRAL_INST, NO_FORMAT, ChatFormat
from attnviz.errors import AttnvizError
from attnviz.models.base import ModelAdapter
from attnviz.trace import ImageGeometry


class TextAdapter(ModelAdapter):
    family = "text"
    model_types = ()  # any config the causal-LM auto class knows and that has no vision tower: see adapter_for
    chat_formats = (CHATML, LLAMA3, MISTRAL_INST)  # Qwen2/Qwen3, Llama-3, Mistral/Llama-2 instruct; then the rest
    text_only = True

    def _has_template(self) -> bool:
        return getattr(self.tokenizer, "chat_template", None) is not None

    def build_prompt(self, question: str, n_images: int) -> str:
        if not self._has_template():
            return question
        messages = [{"role": "user", "content": question}]
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def prepare_inputs(self, prompt: str, images: list[Image.Image]) -> dict[str, Any]:
        if images:
            raise AttnvizError(
                f"the model is text-only ({self.config.model_type}) but the sample has {len(images)} image(s); "
                "pick a sample with \"image\": [] or a vision-language checkpoint"
            )
        # the chat template already wrote any BOS token: do not add another
        special = not self._has_template()
        return dict(self.tokenizer([prompt], return_tensors="pt", add_special_tokens=special))

    def chat_format(self, prompt: str) -> ChatFormat:
        """NO_FORMAT for a base model without a template: its prompt is the bare question, which may well quote
        a template's header."""
        return super().chat_format(prompt) if self._has_template() else NO_FORMAT

    def image_token_id(self) -> int | None:
        return None

    def image_geometry(self, inputs: dict[str, Any], image_sizes: list[tuple[int, int]]) -> list[ImageGeometry]:
        return []
