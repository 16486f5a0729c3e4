"""Attention sinks: token groups that soak up attention and flatten everyone else's colour.

``render.exclude`` names groups to leave out of the normalisation (the colour scale); they are drawn in a
neutral grey and the share of the row they received is shown as a number in the header. Pure functions over a
trace's token texts and kinds, so the viewer can use the same definitions.

Groups (sequence positions of the whole prompt + answer):

- ``bos``: position 0, the first token, whatever it is (the classic sink; Qwen's ``<|im_start|>``).
- ``system``: the system turn, ``<|im_start|>system`` … ``<|im_end|>``, inclusive.
- ``vision_markers``: special tokens right before or after a run of image tokens (``<|vision_start|>``,
  ``<|vision_end|>``, ``<image>`` brackets).
- ``chat_template``: the chat template's scaffolding: every other special token (``<|im_start|>``,
  ``<|im_end|>``, ``<|endoftext|>``), the role name after ``<|im_start|>`` and the newline ending that header.
- ``special``: every token of kind ``special``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

SINK_GROUPS = ("bos", "system", "vision_markers", "chat_template", "special")
TURN_START = "<|im_start|>"
TURN_END = "<|im_end|>"
MAX_ROLE_TOKENS = 3  # a turn header is "<|im_start|>" + role + newline: never reach into the turn's text


def sink_mask(
    texts: Sequence[str], kinds: Sequence[str], groups: Iterable[str], positions: Iterable[int] = ()
) -> np.ndarray:
    """(S,) bool: True where a token belongs to one of ``groups`` or is one of ``positions`` (negative: from
    the end)."""
    n = len(kinds)
    mask = np.zeros(n, dtype=bool)
    finders = {
        "bos": lambda: np.arange(n) == 0,
        "system": lambda: _system_turn(texts),
        "vision_markers": lambda: _vision_markers(kinds),
        "chat_template": lambda: _scaffolding(texts, kinds),
        "special": lambda: np.asarray(kinds, dtype=object) == "special",
    }
    for group in groups:
        if group not in finders:
            raise ValueError(f"unknown sink group {group!r} in render.exclude: use {', '.join(SINK_GROUPS)}")
        if n:
            mask |= finders[group]()
    for p in positions:
        if not -n <= int(p) < n:
            raise ValueError(f"render.exclude_positions has {p}, outside the sequence of {n} tokens")
        mask[int(p)] = True
    return mask


def _system_turn(texts: Sequence[str]) -> np.ndarray:
    mask = np.zeros(len(texts), dtype=bool)
    inside = False
    for i, text in enumerate(texts):
        if text == TURN_START and i + 1 < len(texts) and texts[i + 1].strip() == "system":
            inside = True
        mask[i] = inside
        if inside and text == TURN_END:
            inside = False
    return mask


def _vision_markers(kinds: Sequence[str]) -> np.ndarray:
    k = np.asarray(kinds, dtype=object)
    image = k == "image"
    near = np.zeros(len(k), dtype=bool)
    near[:-1] |= image[1:]  # right before an image token
    near[1:] |= image[:-1]  # right after one
    return near & (k == "special")


def _scaffolding(texts: Sequence[str], kinds: Sequence[str]) -> np.ndarray:
    """Special tokens that are not vision markers, plus each turn header's role name and newline."""
    mask = (np.asarray(kinds, dtype=object) == "special") & ~_vision_markers(kinds)
    for i, text in enumerate(texts):
        if text != TURN_START:
            continue
        j = i + 1
        end = min(len(texts), i + 1 + MAX_ROLE_TOKENS)
        while j < end and kinds[j] != "special":  # the role name, up to the header's newline
            mask[j] = True
            if "\n" in texts[j]:
                break
            j += 1
    for i, text in enumerate(texts[:-1]):
        if text == TURN_END and texts[i + 1].strip() == "":
            mask[i + 1] = True  # the newline between turns
    return mask


def excluded_share(row: np.ndarray, mask: np.ndarray) -> float:
    """Share of the row's attention (all K keys) that falls on excluded positions; ``mask`` (>= K,) bool."""
    total = float(np.sum(row, dtype=np.float64))
    if total <= 0:
        return 0.0
    return float(np.sum(row[mask[: len(row)]], dtype=np.float64)) / total
