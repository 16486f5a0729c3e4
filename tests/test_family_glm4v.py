"""GLM-4.1V specifics: its reasoning tags are single (non-special) tokens of the answer, so each segment starts and
ends exactly on a tag; the box GLM draws around a final answer (<|begin_of_box|> ... <|end_of_box|>) is special
tokens, which the chat_template sink group counts (every special token is scaffolding to it), the tags are not."""

from __future__ import annotations

import numpy as np
from PIL import Image
from transformers import AutoConfig, AutoProcessor

from attnviz import analysis, sinks
from attnviz.models import adapter_for
from attnviz.models.tokens import special_token_ids, token_kinds, token_texts


def test_reasoning_tags_are_whole_text_tokens_and_the_box_tokens_sinks(twin_dir):
    folder = twin_dir("glm4v")
    adapter = adapter_for(AutoProcessor.from_pretrained(folder), AutoConfig.from_pretrained(folder))
    prompt = adapter.build_prompt("Where?", 1)
    ids = adapter.prepare_inputs(prompt, [Image.new("RGB", (100, 70))])["input_ids"][0].tolist()
    answer = "<think>Left.</think><answer><|begin_of_box|>(3,4)<|end_of_box|></answer>"
    ids += adapter.tokenizer(answer, add_special_tokens=False)["input_ids"]
    texts = token_texts(adapter.tokenizer, ids)
    kinds = token_kinds(ids, adapter.image_token_id(), special_token_ids(adapter.tokenizer))
    think, reply = analysis.segments(texts)
    assert (texts[think.first], texts[think.last], texts[reply.first], texts[reply.last]) == (
        "<think>", "</think>", "<answer>", "</answer>")
    assert kinds[think.first] == "text"  # GLM's tags are plain added tokens, not special ones
    chat = adapter.chat_format(prompt)
    template = sinks.sink_mask(texts, kinds, ["chat_template"], chat=chat)
    boxes = [i for i, t in enumerate(texts) if t in ("<|begin_of_box|>", "<|end_of_box|>")]
    assert template[boxes].all() and not template[reply.first] and np.flatnonzero(template)[-1] == boxes[-1]
