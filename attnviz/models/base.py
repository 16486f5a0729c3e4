"""The adapter interface: everything attnviz needs to know about one model family."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from PIL import Image

from attnviz.chat import KNOWN_FORMATS, NO_FORMAT, ChatFormat
from attnviz.clips import Clip, split_inputs
from attnviz.errors import AttnvizError
from attnviz.trace import ImageGeometry

VIDEO_FAMILIES = "Qwen2-VL, Qwen2.5-VL and Qwen3-VL"  # the families whose adapters take a video


def chat_prompt(processor: Any, question: str, n_images: int, n_videos: int = 0) -> str:
    """The chat-templated prompt text: every image, every video, then the question, then the generation prompt."""
    content: list[dict[str, str]] = [{"type": "image"} for _ in range(n_images)]
    content += [{"type": "video"} for _ in range(n_videos)]
    content.append({"type": "text", "text": question})
    messages = [{"role": "user", "content": content}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def text_kwargs(tokenizer: Any, prompt: str) -> dict[str, bool]:
    """``add_special_tokens=False`` when the chat template already wrote what the tokenizer adds in front (Gemma's
    and Mistral's ``<s>``/``<bos>``, Llama 3's ``<|begin_of_text|>``, ...): tokenizing the prompt as is would start
    it twice, which the model never saw in training. Decided from the tokenizer's own output, whatever it adds."""
    plain = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    added = tokenizer(prompt)["input_ids"]
    lead = len(added) - len(plain) if added[len(added) - len(plain) :] == plain else 0  # tokens put in front
    return {"add_special_tokens": False} if lead > 0 and plain[:lead] == added[:lead] else {}


class ModelAdapter(ABC):
    """One small adapter per family: prompt, inputs, image-token geometry."""

    family: str = ""
    model_types: tuple[str, ...] = ()  # config.model_type values this adapter handles
    # the chat templates its checkpoints ship, most common first (none stated: every known format is tried)
    chat_formats: tuple[ChatFormat, ...] = ()
    text_only: bool = False  # loaded with AutoModelForCausalLM instead of AutoModelForImageTextToText
    flash_attention: bool = True  # False: FlashAttention cannot apply the mask the family needs (auto picks sdpa)
    video: bool = False  # takes a sample's video (prepare_video; each temporal patch a geometry entry)

    def __init__(self, processor: Any, config: Any):
        self.processor = processor
        self.config = config
        self.tokenizer = getattr(processor, "tokenizer", processor)

    def build_prompt(self, question: str, n_images: int) -> str:
        return chat_prompt(self.processor, question, n_images)

    def prepare_inputs(self, prompt: str, images: list[Image.Image]) -> dict[str, Any]:
        """Processor output (tensors, batch of one) ready for ``model.generate``."""
        extra = text_kwargs(self.tokenizer, prompt)
        return dict(self.processor(text=[prompt], images=images or None, return_tensors="pt", **extra))

    def prepare(
        self, question: str, items: Sequence[Image.Image | Clip]
    ) -> tuple[str, dict[str, Any], list[ImageGeometry]]:
        """(prompt, processor inputs, geometry) of a question about ``items`` (images, then clips: data's order);
        the geometry lists every image, then every temporal patch of every clip, indexed in that order."""
        images, clips = split_inputs(items)
        if clips:
            if not self.video:
                raise AttnvizError(
                    f"{self.family} takes no video in attnviz (video: {VIDEO_FAMILIES}); drop the sample's 'video'"
                )
            return self.prepare_video(question, images, clips)
        prompt = self.build_prompt(question, len(images))
        inputs = self.prepare_inputs(prompt, images)
        return prompt, inputs, self.image_geometry(inputs, [image.size for image in images])

    def prepare_video(
        self, question: str, images: list[Image.Image], clips: list[Clip]
    ) -> tuple[str, dict[str, Any], list[ImageGeometry]]:
        """:meth:`prepare` with at least one clip, for families with ``video = True``."""
        raise NotImplementedError

    def visual_token_ids(self) -> set[int]:
        """Ids of the placeholders that stand for image (and video) patches: tokens of kind ``image``."""
        ids = {self.image_token_id(), getattr(self.config, "video_token_id", None) if self.video else None}
        return {i for i in ids if isinstance(i, int)}

    def image_token_id(self) -> int | None:
        """Id of the placeholder token that stands for image patches (None for text-only models); every
        supported vision family names it ``image_token_id`` in its config."""
        return getattr(self.config, "image_token_id", None)

    def chat_format(self, prompt: str) -> ChatFormat:
        """The format of a prompt :meth:`build_prompt` wrote: see :func:`pick_chat_format`."""
        return pick_chat_format(prompt, self.chat_formats)

    @abstractmethod
    def image_geometry(self, inputs: dict[str, Any], image_sizes: list[tuple[int, int]]) -> list[ImageGeometry]:
        """Per image: where its tokens start and the grid they tile, from the processor's output.

        ``image_sizes``: (width, height) of the caller's images, in prompt order (``PIL.Image.size``); families
        whose grid covers only part of the image (a centre crop, a padded square) say which part from them.
        """


def pick_chat_format(prompt: str, formats: tuple[ChatFormat, ...]) -> ChatFormat:
    """The format whose assistant header ends ``prompt`` (a generation prompt ends with it), else the first whose
    header occurs in it; ``formats`` first, then every known format (a checkpoint fine-tuned with another family's
    template); NO_FORMAT when none fits (a bare question: no scaffolding to find).

    Ending first: a question may quote another template's header, the generation prompt cannot end with it.
    """
    candidates = [f for f in dict.fromkeys((*formats, *KNOWN_FORMATS)) if f.assistant]
    end = prompt.rstrip()
    for fits in (lambda f: end.endswith(f.assistant.rstrip()), lambda f: f.assistant in prompt):
        for chat in candidates:
            if fits(chat):
                return chat
    return NO_FORMAT
