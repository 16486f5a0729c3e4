"""Every family's chat format with a Reason-RFT answer after its real prompt: the <think> / <answer> segments lie in
the answer, whole, and the assistant turn starts at the answer's first token (the families of
tests/test_chat_formats.py's table)."""

from __future__ import annotations

import pytest
from transformers import AutoConfig, AutoProcessor

from attnviz import analysis, sinks
from attnviz.models import adapter_for
from attnviz.models.tokens import token_texts
from tests.test_chat_formats import CASES, IMAGE, _prompt

REASONED = "<think>It is left.</think><answer>(3,4)</answer>"  # Reason-RFT's answer format


@pytest.fixture(scope="module")
def adapters(twin_dir):
    def _adapter(family: str):
        folder = twin_dir(family)
        return adapter_for(AutoProcessor.from_pretrained(folder), AutoConfig.from_pretrained(folder))

    return _adapter


@pytest.mark.parametrize("family", sorted({family for family, _ in CASES}))
def test_think_and_answer_segments_follow_each_familys_prompt(adapters, family):
    """A Reason-RFT answer after the family's prompt: its two segments, nothing in the prompt, the turn right."""
    adapter = adapters(family)
    prompt = _prompt(adapter, family, False)
    inputs = adapter.prepare_inputs(prompt, [] if family == "text" else [IMAGE])
    ids = inputs["input_ids"][0].tolist()
    answer = adapter.tokenizer(REASONED, add_special_tokens=False)["input_ids"]
    texts = token_texts(adapter.tokenizer, ids + answer)  # as the trace records them
    segments = analysis.segments(texts)
    assert [seg.name for seg in segments] == ["think", "answer"] and segments[0].first >= len(ids)
    for seg, span in zip(segments, ("<think>It is left.</think>", "<answer>(3,4)</answer>"), strict=True):
        assert span in "".join(texts[seg.first : seg.last + 1])  # a token may run over a tag's edge ("><")
    assert sinks.assistant_start(texts, len(ids), adapter.chat_format(prompt)) == len(ids)
