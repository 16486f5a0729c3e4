"""Per-token text reassembles the decoded string; kinds label image, special and text tokens."""

from __future__ import annotations

import pytest

from attnviz.models.tokens import special_token_ids, token_kinds, token_texts


@pytest.fixture(scope="module")
def tokenizer():
    from attnviz.demo import build

    return build.build_tokenizer()


@pytest.mark.parametrize("text", ["Based on (3,5)</answer>", "a  b\n\nc", "数字 é ✓ mixed", "<|im_start|>x<|im_end|>"])
def test_token_texts_concatenate_to_the_decoded_text(tokenizer, text):
    ids = tokenizer(text)["input_ids"]
    pieces = token_texts(tokenizer, ids)
    assert len(pieces) == len(ids)
    assert "".join(pieces) == tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def test_token_kinds(tokenizer):
    image_id = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    ids = tokenizer("<|im_start|>user\n<|vision_start|><|image_pad|><|image_pad|><|vision_end|>Hi")["input_ids"]
    kinds = token_kinds(ids, image_id, special_token_ids(tokenizer))
    assert kinds[0] == "special" and kinds[-1] == "text"
    assert kinds.count("image") == 2
    assert [k for k, i in zip(kinds, ids, strict=True) if i == image_id] == ["image", "image"]
