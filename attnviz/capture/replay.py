"""Replay: teacher-force a stored answer in one forward pass and capture the row of every answer position.

The rows are the ones generation would have produced had the model written exactly these tokens: the query at
``prompt_len - 1 + t`` attends over the prompt and answer tokens ``0 .. t - 1``, which causal masking guarantees
in a single pass. The answer text is tokenised as plain text (no special tokens added), so it is the answer
that was scored, token for token as this tokenizer splits it. A field holding a list of token ids is replayed
verbatim (a checkpoint comparison's ``compare.answer=first``: the others read exactly the first model's tokens).
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from attnviz.capture.recorder import RowRecorder, recording
from attnviz.errors import AttnvizError

log = logging.getLogger(__name__)
ANSWER_KEYS = ("pred", "answer", "solution")  # tried in this order when no key is configured


def answer_text(fields: dict[str, Any], key: str | None = None) -> tuple[str, str | list[int]]:
    """The stored answer to replay and the key it came from: ``key`` if given, else pred, answer, solution.

    The answer is a string, or a list of token ids when the field holds one."""
    if key is not None:
        if key not in fields:
            raise AttnvizError(
                f"capture.replay_key={key!r}: the sample has no such field (fields: {', '.join(sorted(fields))})"
            )
        chosen = key
    else:
        chosen = next((k for k in ANSWER_KEYS if fields.get(k) not in (None, "")), None)
        if chosen is None:
            raise AttnvizError(
                f"mode=replay needs a stored answer: the sample has none of {', '.join(ANSWER_KEYS)}; "
                "set capture.replay_key to the field that holds it"
            )
    text = fields[chosen]
    if is_token_ids(text):
        return chosen, list(text)
    if not isinstance(text, str) or not text:
        raise AttnvizError(
            f"mode=replay: sample field {chosen!r} must be a non-empty string (or a list of token ids) to replay"
        )
    return chosen, text


def is_token_ids(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, int) and v >= 0 for v in value)


def answer_ids(tokenizer: Any, answer: str | list[int]) -> list[int]:
    """Token ids to replay: a list of ids as given (checked against the vocabulary), a text as tokenised."""
    if isinstance(answer, list):
        size = len(tokenizer)
        if max(answer) >= size:
            raise AttnvizError(f"mode=replay: token id {max(answer)} is outside this tokenizer's {size} ids")
        return list(answer)
    return list(tokenizer(answer, add_special_tokens=False)["input_ids"])


def extend_inputs(inputs: dict[str, Any], ids: list[int]) -> dict[str, Any]:
    """Append answer tokens to a batch-of-one processor output: ids, attention mask, per-token type ids."""
    prompt_ids = inputs["input_ids"]  # (1, P)
    answer = torch.tensor([ids], dtype=prompt_ids.dtype, device=prompt_ids.device)  # (1, T)
    extended = dict(inputs, input_ids=torch.cat([prompt_ids, answer], dim=1))
    for name, value in inputs.items():
        if name == "attention_mask":
            extended[name] = torch.cat([value, torch.ones_like(answer, dtype=value.dtype)], dim=1)
        elif name.endswith("token_type_ids"):  # answer tokens are text (type 0), e.g. Qwen's mm_token_type_ids
            extended[name] = torch.cat([value, torch.zeros_like(answer, dtype=value.dtype)], dim=1)
    return extended


def replay_with_capture(model: Any, inputs: dict[str, Any], ids: list[int], recorder: RowRecorder) -> None:
    """One forward pass over prompt + ``ids``; ``recorder`` (built with ``answer=(P, len(ids))``) takes the rows."""
    prompt_len = inputs["input_ids"].shape[1]
    if recorder.answer != (prompt_len, len(ids)):
        raise ValueError(f"recorder expects answer {recorder.answer}, replaying ({prompt_len}, {len(ids)})")
    with torch.inference_mode(), recording(recorder):
        model(**extend_inputs(inputs, ids), use_cache=False, logits_to_keep=1)
    if recorder.n_steps() != len(ids):
        raise RuntimeError(f"captured {recorder.n_steps()} rows for {len(ids)} replayed tokens")
    log.info("replayed %d answer tokens in one forward pass", len(ids))
