"""How a family's chat template marks its turns, as data: the text it writes around each message.

Each model adapter states its :class:`ChatFormat`; tracing writes it into ``trace.json``, and everything that needs
to know where the system turn, a role header or the assistant turn is (sink groups, the text panel's start, the
viewer) reads it from the trace. Nothing outside the adapters spells a template's markers. Model-free.

Markers are matched in the concatenated token texts, so a marker split over several tokens (``USER`` ``:``) or
written as one special token (``<|im_start|>``) is found alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ChatFormat:
    """The text a chat template writes around messages ("" where it writes nothing)."""

    name: str  # e.g. "chatml", "vicuna", "mistral_inst", "none"
    system: str = ""  # opens the system turn; "" when the template marks none
    user: str = ""  # opens a user turn
    assistant: str = ""  # opens an assistant turn; the generation prompt ends with it
    turn_end: str = ""  # closes a turn ("" when a turn ends where the next marker begins)
    system_end: str = ""  # closes the system turn when it differs from turn_end (e.g. "<</SYS>>")

    @property
    def markers(self) -> tuple[str, ...]:
        """Every non-empty marker: the role headers and turn ends (the template's scaffolding)."""
        found = (self.system, self.user, self.assistant, self.turn_end, self.system_end)
        return tuple(dict.fromkeys(m for m in found if m))

    def to_json(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> ChatFormat:
        """A trace's stored format; traces written before formats were recorded were ChatML (Qwen) runs."""
        return CHATML if data is None else cls(**data)


# Qwen2-VL, Qwen2.5-VL, Qwen3-VL, LLaVA-OneVision, Qwen2 text models (LLaVA-NeXT 34B/72B, llava-interleave too).
CHATML = ChatFormat(
    "chatml", system="<|im_start|>system\n", user="<|im_start|>user\n", assistant="<|im_start|>assistant\n",
    turn_end="<|im_end|>\n",
)
# LLaVA-1.5 and LLaVA-NeXT vicuna checkpoints: "USER: <image>\n<question> ASSISTANT:". A system message is written
# as bare text before the first USER (no marker, so no system turn), and turns have no end marker.
VICUNA = ChatFormat("vicuna", user="USER: ", assistant="ASSISTANT:")
# LLaVA-NeXT-Mistral (and Mistral/Llama-2 instruct text models): "<<SYS>>\n<system>\n<</SYS>>\n\n[INST] <image>\n
# <question> [/INST]". "[INST]"/"[/INST]" without the spaces around them: Mistral's templates differ there (v0.1
# " [/INST]", v0.3 "[/INST]", later "[INST]" with no space after), and a token that is only whitespace besides a
# marker (" [/") counts as the marker's anyway.
MISTRAL_INST = ChatFormat(
    "mistral_inst", system="<<SYS>>\n", user="[INST]", assistant="[/INST]", turn_end="</s>",
    system_end="\n<</SYS>>\n\n",
)
# Mistral-Small-3.1 (Mistral 3, Mistral's v7 template): "<s>[SYSTEM_PROMPT]...[/SYSTEM_PROMPT][INST][IMG]question
# [/INST]"; the template always writes a system turn (its default prompt when none is given), answers end with "</s>".
MISTRAL_V7 = ChatFormat(
    "mistral_v7", system="[SYSTEM_PROMPT]", user="[INST]", assistant="[/INST]", turn_end="</s>",
    system_end="[/SYSTEM_PROMPT]",
)
# Llama-3 instruct (llama3-llava-next-8b, Llama-3 text models): header tokens around the role, "<|eot_id|>" ends turns.
LLAMA3 = ChatFormat(
    "llama3", system="<|start_header_id|>system<|end_header_id|>\n\n",
    user="<|start_header_id|>user<|end_header_id|>\n\n",
    assistant="<|start_header_id|>assistant<|end_header_id|>\n\n", turn_end="<|eot_id|>",
)
# Gemma 3: "<bos><start_of_turn>user\n<start_of_image>question<end_of_turn>\n<start_of_turn>model\n". A system
# message is written bare at the start of the first user turn (its text + "\n\n"): no marker, so no system turn.
GEMMA = ChatFormat(
    "gemma", user="<start_of_turn>user\n", assistant="<start_of_turn>model\n", turn_end="<end_of_turn>\n"
)
# Idefics3 and SmolVLM/SmolVLM2: "<|im_start|>User:<image>question<end_of_utterance>\nAssistant:" (Idefics3 starts
# with Llama 3's "<|begin_of_text|>"); ":" without a space when a turn opens with an image, ": " otherwise.
IDEFICS = ChatFormat(
    "idefics", system="System:", user="User:", assistant="Assistant:", turn_end="<end_of_utterance>\n"
)
# GLM-4.1V-Thinking: "[gMASK]<sop><|system|>\n...<|user|>\n<|begin_of_image|><|image|><|end_of_image|>question
# <|assistant|>\n"; no turn ends: the next role token closes a turn (and <|user|> ends generation). The model answers
# "<think>...</think><answer>...</answer>", the tags Reason-RFT uses.
GLM = ChatFormat("glm", system="<|system|>\n", user="<|user|>\n", assistant="<|assistant|>\n")
# No template (a base model prompted with the bare question): no scaffolding, no turns.
NO_FORMAT = ChatFormat("none")
# Every format above that marks an assistant turn: what a prompt is matched against when its adapter's own
# formats do not fit (a checkpoint fine-tuned with another family's template).
KNOWN_FORMATS: tuple[ChatFormat, ...] = (CHATML, VICUNA, MISTRAL_INST, LLAMA3, GEMMA, IDEFICS, MISTRAL_V7, GLM)
