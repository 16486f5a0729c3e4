"""Per-token text and kind, for any tokenizer."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

_CONTEXT = 4  # tokens of left context when decoding one token (leading spaces, multi-byte characters)


def token_texts(tokenizer: Any, ids: list[int]) -> list[str]:
    """The text each token adds to the decoded string; the pieces concatenate to the full decode.

    Decoding a token alone loses SentencePiece's leading space and splits multi-byte characters, so each token's
    text is the difference between decoding it with a little left context and decoding the context alone. A token
    that ends inside a multi-byte character gets "" and the token completing the character gets all of it.
    """
    texts: list[str] = []
    first_pending = 0  # first token whose text has not been emitted yet
    for i in range(len(ids)):
        left = ids[max(0, first_pending - _CONTEXT) : first_pending]
        before = _decode(tokenizer, left)
        after = _decode(tokenizer, left + ids[first_pending : i + 1])
        piece = after[_common_prefix_len(before, after) :]
        if piece.endswith("\ufffd") and i + 1 < len(ids):
            texts.append("")  # incomplete character: wait for the bytes that finish it
            continue
        texts.append(piece)
        first_pending = i + 1
    return texts


def _decode(tokenizer: Any, ids: list[int]) -> str:
    if not ids:
        return ""
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def _common_prefix_len(a: str, b: str) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def special_token_ids(tokenizer: Any) -> set[int]:
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    for token_id, added in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(added, "special", False):
            ids.add(int(token_id))
    return ids


def token_kinds(ids: list[int], image_token_id: int | Collection[int] | None, special_ids: set[int]) -> list[str]:
    """'image' for image (and video) placeholders (one id or several), 'special' for the tokenizer's special tokens,
    else 'text'."""
    visual = {image_token_id} if isinstance(image_token_id, int) else set(image_token_id or ())
    return ["image" if tid in visual else "special" if tid in special_ids else "text" for tid in ids]
