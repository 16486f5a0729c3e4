"""The chat template's scaffolding and the attention sinks, found in a trace's tokens. Model-free.

Where the system turn is, which tokens are role headers and turn ends, where the assistant's turn begins: all read
from the trace's own :class:`~attnviz.chat.ChatFormat` (the adapter's, written into trace.json), never from one
template's literals. The sink groups (``render.exclude``) build on them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

from attnviz.analysis import char_offsets, token_at
from attnviz.chat import CHATML, ChatFormat
from attnviz.errors import SettingError

SINK_GROUPS = ("bos", "system", "vision_markers", "chat_template", "special")


# --- the chat template: markers, system turn, where the assistant speaks ------------------------------------


def _char_mask(length: int, spans: Iterable[tuple[int, int]]) -> np.ndarray:
    mask = np.zeros(length, dtype=bool)
    for start, stop in spans:
        mask[start:stop] = True
    return mask


def _spans(text: str, needle: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(re.escape(needle), text)] if needle else []


def marker_mask(texts: Sequence[str], chat: ChatFormat) -> np.ndarray:
    """(S,) bool: tokens of the template's markers (role headers, turn ends). A token counts when it overlaps a
    marker and has nothing but whitespace outside it (`` [/`` of ``[/INST]`` does; ``":Hello"`` does not)."""
    text = "".join(texts)
    inside = _char_mask(len(text), (span for m in chat.markers for span in _spans(text, m)))
    offsets = char_offsets(texts)
    covered = np.concatenate([[0], np.cumsum(inside)])  # (len + 1,) marker characters before each offset
    mask = np.zeros(len(texts), dtype=bool)
    for i in np.flatnonzero(covered[offsets[1:]] > covered[offsets[:-1]]):  # tokens touching a marker
        start, stop = offsets[i], offsets[i + 1]
        outside = "".join(ch for ch, hit in zip(text[start:stop], inside[start:stop], strict=True) if not hit)
        mask[i] = not outside.strip()
    return mask


def system_turn(texts: Sequence[str], chat: ChatFormat) -> tuple[int, int]:
    """[first, last) token positions of the first system turn, its markers included (not the whitespace after
    its end marker); (0, 0) when the format marks none or the prompt has none."""
    text = "".join(texts)
    start = text.find(chat.system) if chat.system else -1
    if start < 0:
        return 0, 0
    after = start + len(chat.system)
    closers = (chat.system_end, chat.turn_end)
    ends = [(at, at + len(m.rstrip())) for m in closers if m and (at := text.find(m, after)) >= 0]
    if not ends and chat.user and (at := text.find(chat.user, after)) >= 0:
        ends = [(at, at)]  # a template without turn ends: the system turn runs up to the first user turn
    stop = min(ends)[1] if ends else len(text)
    offsets = char_offsets(texts)
    return token_at(offsets, start), token_at(offsets, max(stop - 1, start)) + 1


def assistant_start(texts: Sequence[str], prompt_len: int, chat: ChatFormat) -> int | None:
    """Position of the first token after the prompt's last assistant header (and the newlines after it):
    where the assistant's turn begins; None when the format has no assistant marker or the prompt lacks it."""
    offsets = char_offsets(texts)
    prompt_text = "".join(texts[:prompt_len])
    header = prompt_text.rfind(chat.assistant) if chat.assistant else -1
    if header < 0:
        return None
    end = header + len(chat.assistant)
    while end < len(prompt_text) and prompt_text[end] in "\n ":
        end += 1
    return token_at(offsets, end) if end < len(prompt_text) else prompt_len


# --- sinks ---------------------------------------------------------------------------------------------------


def vision_markers(kinds: Sequence[str]) -> np.ndarray:
    """(S,) bool: special tokens right before or after a run of image tokens (``<|vision_start|>`` ...)."""
    k = np.asarray(kinds, dtype=object)
    image = k == "image"
    near = np.zeros(len(k), dtype=bool)
    near[:-1] |= image[1:]
    near[1:] |= image[:-1]
    return near & (k == "special")


def sink_mask(
    texts: Sequence[str], kinds: Sequence[str], groups: Iterable[str], positions: Iterable[int] = (),
    chat: ChatFormat = CHATML,
) -> np.ndarray:
    """(S,) bool: True where a token belongs to one of the sink ``groups`` or is one of ``positions`` (negative:
    from the end). ``chat``: the trace's chat format (``trace.chat_format``).

    Groups: ``bos`` position 0; ``system`` the system turn; ``vision_markers`` the special tokens around each run
    of image tokens; ``chat_template`` every other special token plus the template's role headers and turn ends;
    ``special`` every token of kind special.
    """
    n = len(kinds)
    finders = {
        "bos": lambda: np.arange(n) == 0,
        "system": lambda: np.isin(np.arange(n), np.arange(*system_turn(texts, chat))),
        "vision_markers": lambda: vision_markers(kinds),
        "chat_template": lambda: ((np.asarray(kinds, dtype=object) == "special") & ~vision_markers(kinds))
        | marker_mask(texts, chat),
        "special": lambda: np.asarray(kinds, dtype=object) == "special",
    }
    mask = np.zeros(n, dtype=bool)
    for group in groups:
        group = getattr(group, "value", group)  # a SinkGroup enum member or its name
        if group not in finders:
            raise SettingError(f"unknown sink group {group!r} in render.exclude: use {', '.join(SINK_GROUPS)}")
        if n:
            mask |= finders[group]()
    for p in positions:
        if not -n <= int(p) < n:
            raise SettingError(f"render.exclude_positions has {p}, outside the sequence of {n} tokens")
        mask[int(p)] = True
    return mask


def excluded_share(row: np.ndarray, mask: np.ndarray) -> float:
    """Share of the row's attention (all K keys) that falls on excluded positions; ``mask`` (>= K,) bool."""
    total = float(np.sum(row, dtype=np.float64))
    if total <= 0:
        return 0.0
    return float(np.sum(row[mask[: len(row)]], dtype=np.float64)) / total
