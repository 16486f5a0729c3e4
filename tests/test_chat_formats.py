"""Each adapter's chat format finds, in its family's real prompt, exactly the template's scaffolding.

The prompt is built as tracing builds it (the adapter, the twin's real chat template, one image), tokenized by the
processor; the sink groups of :mod:`attnviz.analysis` must mark exactly the tokens written out below. Positions
before the question count from the start (0, 1, ...), positions after it from the end (-1 = the last prompt
token), so the expectations do not depend on how many tokens an image takes.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from attnviz import analysis, sinks
from attnviz.chat import (
    CHATML,
    GEMMA,
    GLM,
    IDEFICS,
    KNOWN_FORMATS,
    LLAMA3,
    MISTRAL_INST,
    MISTRAL_V7,
    NO_FORMAT,
    VICUNA,
    ChatFormat,
)
from attnviz.models.base import pick_chat_format
from attnviz.models.llava import LlavaAdapter
from attnviz.models.llava_next import LlavaNextAdapter
from attnviz.models.text import TextAdapter
from attnviz.models.tokens import special_token_ids, token_kinds, token_texts
from tests.twin_tools import twin_adapter

QUESTION = "Where is it?"
SYSTEM = "Be brief."
IMAGE = Image.new("RGB", (100, 70))
QWEN_DEFAULT_SYSTEM = ["You", " are", " a", " helpful", " assistant", "."]
BRIEF = ["B", "e", " ", "b", "r", "i", "e", "f", "."]  # SYSTEM in the twins' tiny BPE


@pytest.fixture(scope="module")
def adapters(twin_dir):
    def _adapter(family: str):
        return twin_adapter(twin_dir(family))

    return _adapter


def _system_prompt(adapter, family: str) -> str:
    """A system + user conversation through the family's own template (what a caller with a system prompt gets)."""
    if family == "text":
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    else:
        user = [{"type": "image"}, {"type": "text", "text": QUESTION}]
        # GLM-4.1V's template writes a system message's content as it is: its system messages are strings
        system = SYSTEM if family == "glm4v" else [{"type": "text", "text": SYSTEM}]
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    return adapter.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def _prompt(adapter, family: str, system: bool) -> str:
    """What tracing builds (one image; none for the text model), or a conversation with a system message."""
    return _system_prompt(adapter, family) if system else adapter.build_prompt(QUESTION, int(family != "text"))


def _tokens(adapter, prompt: str, family: str) -> tuple[list[str], list[str]]:
    """The prompt's token texts and kinds, as the trace records them."""
    inputs = adapter.prepare_inputs(prompt, [] if family == "text" else [IMAGE])
    ids = inputs["input_ids"][0].tolist()
    kinds = token_kinds(ids, adapter.image_token_id(), special_token_ids(adapter.tokenizer))
    return token_texts(adapter.tokenizer, ids), kinds


def _question(texts: list[str]) -> range:
    """The token positions of the question."""
    offsets, start = analysis.char_offsets(texts), "".join(texts).find(QUESTION)
    return range(analysis.token_at(offsets, start), analysis.token_at(offsets, start + len(QUESTION) - 1) + 1)


def _marked(mask: np.ndarray, texts: list[str]) -> list[tuple[int, str]]:
    """[(position, text)] of the marked tokens; positions after the question count from the end (-1: the last)."""
    after = _question(texts)[-1]
    return [(int(i) - len(texts) if i > after else int(i), texts[i]) for i in np.flatnonzero(mask)]


def _groups(adapter, prompt: str, family: str) -> dict[str, list[tuple[int, str]]]:
    """Every sink group's marked tokens, plus where the assistant turn starts (as a position from the end)."""
    texts, kinds = _tokens(adapter, prompt, family)
    chat = adapter.chat_format(prompt)
    found = {
        group: _marked(sinks.sink_mask(texts, kinds, [group], chat=chat), texts)
        for group in ("bos", "system", "chat_template")
    }
    start = sinks.assistant_start(texts, len(texts), chat)
    found["assistant_start"] = None if start is None else start - len(texts)  # 0: right after the prompt
    return found


def _spans(first: int, texts: list[str]) -> list[tuple[int, str]]:
    """``texts`` as consecutive tokens from position ``first`` (negative: counted from the end)."""
    return [(first + k, text) for k, text in enumerate(texts)]


USER_HEADER = ["<|im_start|>", "user", "\n"]
CHATML_END = _spans(-5, ["<|im_end|>", "\n", "<|im_start|>", "assistant", "\n"])  # question's end -> generation


def _chatml_system(body: list[str]) -> list[tuple[int, str]]:
    return _spans(0, ["<|im_start|>", "system", "\n", *body, "<|im_end|>"])


def _chatml_template(body: list[str]) -> list[tuple[int, str]]:
    """ChatML scaffolding around a system turn of ``body`` and one user turn: headers and turn ends."""
    after = len(body) + 3
    return [*_spans(0, ["<|im_start|>", "system", "\n"]), *_spans(after, ["<|im_end|>", "\n"]),
            *_spans(after + 2, USER_HEADER), *CHATML_END]


IM_START = [(0, "<|im_start|>")]
GEMMA_SCAFFOLD = [*_spans(0, ["<bos>", "<start_of_turn>", "user", "\n"]),
                  *_spans(-8, ["<end_of_turn>", "\n", "<start_of_turn>", "m", "o", "de", "l", "\n"])]
SYS_OPEN = ["<", "<", "S", "Y", "S", ">", ">", "\n"]  # "<<SYS>>\n"
GLM_END = _spans(-2, ["<|assistant|>", "\n"])
IDEFICS_END = _spans(-6, ["<end_of_utterance>", "\n", "A", "s", "sistant", ":"])


def _idefics_case(first: str, system: bool):
    """Idefics3 / SmolVLM2 turns (a system message is its own "System: ...<end_of_utterance>" turn), plus the
    <fake_token_around_image> opening each row of tiles and the global image (after text, before a marker): a
    special token that touches no image token, so template to sink_mask, not a vision marker; where the tiles put it."""
    header = ["S", "y", "stem", ":"]
    scaffold = [*_spans(0, [first, *header]), *_spans(15, ["<end_of_utterance>", "\n", "U", "ser", ":"])]
    body = _spans(1, [*header, " ", *BRIEF[:2], " ", *BRIEF[3:], "<end_of_utterance>"])
    scaffold, body = (scaffold, body) if system else (_spans(0, [first, "U", "ser", ":"]), [])

    def case(texts: list[str]) -> dict[str, list[tuple[int, str]]]:
        openers = [(i, t) for i, t in enumerate(texts) if t == "<fake_token_around_image>" and "<image>" not in
                   (texts[i - 1], texts[i + 1])]
        return {"bos": [(0, first)], "system": body, "chat_template": [*scaffold, *openers, *IDEFICS_END]}

    return case


def _mistral3_case(body: list[str]) -> dict[str, list[tuple[int, str]]]:
    """"<s>[SYSTEM_PROMPT]<body>[/SYSTEM_PROMPT][INST][IMG]...question[/INST]" """
    end = len(body) + 2
    return {
        "bos": [(0, "<s>")], "system": _spans(1, ["[SYSTEM_PROMPT]", *body, "[/SYSTEM_PROMPT]"]),
        "chat_template": [*_spans(0, ["<s>", "[SYSTEM_PROMPT]"]), *_spans(end, ["[/SYSTEM_PROMPT]", "[INST]"]),
                          (-1, "[/INST]")],
    }


# (family, with a system message) -> the tokens each group marks. "bos" is position 0 whatever it holds: these
# twins' tokenizers add no BOS token (real LLaVA-1.5/NeXT ones add "<s>"), so it is the template's first token.
CASES = {
    ("llava", False): {
        "bos": [(0, "USER")], "system": [],
        "chat_template": [*_spans(0, ["USER", ":", " "]), *_spans(-2, ["ASSISTANT", ":"])],
    },
    ("llava", True): {  # the template writes the system message bare, before USER: no system turn to find
        "bos": [(0, "B")], "system": [],
        "chat_template": [*_spans(10, ["USER", ":", " "]), *_spans(-2, ["ASSISTANT", ":"])],
    },
    ("llava_next", False): {  # the space between "[INST]" and <image> is whitespace outside any marker
        "bos": [(0, "[INST")], "system": [],
        "chat_template": [*_spans(0, ["[INST", "]"]), *_spans(-3, [" [/", "INST", "]"])],
    },
    ("llava_next", True): {
        "bos": [(0, "<")],
        "system": _spans(0, [*SYS_OPEN, *BRIEF, "\n", "<", "</", "S", "Y", "S", ">", ">"]),
        "chat_template": [
            *_spans(0, SYS_OPEN),
            *_spans(17, ["\n", "<", "</", "S", "Y", "S", ">", ">", "\n", "\n", "[INST", "]"]),
            *_spans(-3, [" [/", "INST", "]"]),
        ],
    },
    ("llava_onevision", False): {
        "bos": IM_START, "system": [], "chat_template": [*_spans(0, USER_HEADER), *CHATML_END],
    },
    ("llava_onevision", True): {
        "bos": IM_START, "system": _chatml_system(BRIEF), "chat_template": _chatml_template(BRIEF),
    },
    ("qwen2_vl", False): {  # Qwen2-VL's template adds its default system prompt
        "bos": IM_START, "system": _chatml_system(QWEN_DEFAULT_SYSTEM),
        "chat_template": _chatml_template(QWEN_DEFAULT_SYSTEM),
    },
    ("qwen2_vl", True): {
        "bos": IM_START, "system": _chatml_system(BRIEF), "chat_template": _chatml_template(BRIEF),
    },
    ("qwen3_vl", False): {
        "bos": IM_START, "system": [], "chat_template": [*_spans(0, USER_HEADER), *CHATML_END],
    },
    ("qwen3_vl", True): {
        "bos": IM_START, "system": _chatml_system(BRIEF), "chat_template": _chatml_template(BRIEF),
    },
    ("text", False): {  # Qwen2-Instruct's template adds its default system prompt
        "bos": IM_START, "system": _chatml_system(QWEN_DEFAULT_SYSTEM),
        "chat_template": _chatml_template(QWEN_DEFAULT_SYSTEM),
    },
    ("text", True): {
        "bos": IM_START, "system": _chatml_system(BRIEF), "chat_template": _chatml_template(BRIEF),
    },
    # Gemma 3 writes <bos> itself (the tokenizer adds none on top) and folds a system message, unmarked, into the
    # first user turn: no system turn to find, as with vicuna
    ("gemma3", False): {"bos": [(0, "<bos>")], "system": [], "chat_template": GEMMA_SCAFFOLD},
    ("gemma3", True): {"bos": [(0, "<bos>")], "system": [], "chat_template": GEMMA_SCAFFOLD},
    # Idefics3 / SmolVLM2: "User:" (no space before an image) ... "<end_of_utterance>\nAssistant:"; the template's
    # first token is Llama 3's BOS (Idefics3) or SmolLM2's "<|im_start|>"
    ("idefics3", False): _idefics_case("<|begin_of_text|>", system=False),
    ("idefics3", True): _idefics_case("<|begin_of_text|>", system=True),
    ("smolvlm", False): _idefics_case("<|im_start|>", system=False),
    ("smolvlm", True): _idefics_case("<|im_start|>", system=True),
    # Mistral 3: the template always writes a system turn, Mistral Small 3's dated default when none is given
    ("mistral3", False): lambda texts: _mistral3_case(texts[2 : texts.index("[/SYSTEM_PROMPT]")]),
    ("mistral3", True): _mistral3_case(BRIEF),
    # GLM-4.1V: "[gMASK]<sop>" first; no turn ends, so the system turn runs up to "<|user|>"
    ("glm4v", False): {"bos": [(0, "[gMASK]")], "system": [],
                       "chat_template": [*_spans(0, ["[gMASK]", "<sop>", "<|user|>", "\n"]), *GLM_END]},
    ("glm4v", True): {
        "bos": [(0, "[gMASK]")], "system": _spans(2, ["<|system|>", "\n", *BRIEF]),
        "chat_template": [*_spans(0, ["[gMASK]", "<sop>", "<|system|>", "\n"]), *_spans(13, ["<|user|>", "\n"]),
                          *GLM_END],
    },
}
# InternVL3-hf: ChatML without a default system prompt, as Qwen3-VL (its <img> / </img> are vision markers)
CASES.update({("internvl", system): CASES["qwen3_vl", system] for system in (False, True)})
FORMATS = {"llava": VICUNA, "llava_next": MISTRAL_INST, "llava_onevision": CHATML, "qwen2_vl": CHATML,
           "qwen3_vl": CHATML, "text": CHATML, "gemma3": GEMMA,
           "internvl": CHATML, "idefics3": IDEFICS, "smolvlm": IDEFICS,
           "mistral3": MISTRAL_V7, "glm4v": GLM}


@pytest.mark.parametrize("family,system", list(CASES))
def test_sink_groups_mark_exactly_the_templates_scaffolding(adapters, family, system):
    adapter = adapters(family)
    prompt = _prompt(adapter, family, system)
    assert adapter.chat_format(prompt) == FORMATS[family]
    if system:
        assert SYSTEM in prompt
    found = _groups(adapter, prompt, family)
    case = CASES[family, system]
    expected = dict(case(_tokens(adapter, prompt, family)[0]) if callable(case) else case)
    assert found == {**expected, "assistant_start": 0}, prompt


def test_no_question_token_is_scaffolding(adapters):
    """The question's tokens lie in no group, for every family (a question token is never template)."""
    for family, system in CASES:
        adapter = adapters(family)
        prompt = _prompt(adapter, family, system)
        texts, kinds = _tokens(adapter, prompt, family)
        chat = adapter.chat_format(prompt)
        mask = sinks.sink_mask(texts, kinds, ["system", "chat_template", "vision_markers"], chat=chat)
        assert not mask[list(_question(texts))].any(), (family, system)


def test_the_assistant_turn_starts_at_the_first_answer_token(adapters):
    """With an answer after the prompt, assistant_start is the answer's first token (prompt_len)."""
    adapter = adapters("llava_next")
    prompt = adapter.build_prompt(QUESTION, 1)
    texts, _ = _tokens(adapter, prompt, "llava_next")
    answer_ids = adapter.tokenizer(" It is here.</s>", add_special_tokens=False)["input_ids"]
    answer = token_texts(adapter.tokenizer, answer_ids)
    assert sinks.assistant_start(texts + answer, len(texts), adapter.chat_format(prompt)) == len(texts)


def test_pick_prefers_the_header_that_ends_the_prompt():
    quoting = "USER: <image>\nWhat does <|im_start|>assistant\n mean? ASSISTANT:"  # a question quoting ChatML
    assert pick_chat_format(quoting, (CHATML, VICUNA)) == VICUNA
    assert pick_chat_format("[INST] Hi [/INST] Hello</s>[INST] More", (MISTRAL_INST,)) == MISTRAL_INST  # occurs
    assert pick_chat_format("Just a question?", (CHATML, VICUNA)) == NO_FORMAT


def test_adapters_state_their_families_formats_and_fall_back_to_every_known_format():
    assert LlavaNextAdapter.chat_formats[0] == MISTRAL_INST and VICUNA in LlavaNextAdapter.chat_formats
    vicuna_next = "A chat. USER: <image>\nWhere? ASSISTANT:"  # llava-v1.6-vicuna's template
    assert LlavaNextAdapter(None, None).chat_format(vicuna_next) == VICUNA
    llama3 = "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    assert LlavaAdapter(None, None).chat_format(llama3) == LLAMA3  # llava-llama-3 fine-tunes: not a llava-1.5 format


def test_text_model_without_a_template_has_no_format():
    class Bare:
        chat_template = None

    assert TextAdapter(Bare(), None).chat_format("USER: what does ASSISTANT: mean?") == NO_FORMAT


@pytest.mark.parametrize("chat", [*KNOWN_FORMATS, NO_FORMAT], ids=lambda chat: chat.name)
def test_formats_survive_trace_json(chat):
    assert ChatFormat.from_json(chat.to_json()) == chat
    assert len({f.name for f in (*KNOWN_FORMATS, NO_FORMAT)}) == len(KNOWN_FORMATS) + 1
