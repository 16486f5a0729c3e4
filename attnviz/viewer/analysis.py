"""What the viewer, the poster and the share plot read off a trace: answer segments, attention shares, key frames.

All pure functions of a :class:`~attnviz.trace.Trace` (no I/O). Steps are generated-token indices: step ``t`` is
generated token ``t`` and the row ``trace.row(layer, t)`` that produced it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attnviz.trace import Trace

SEGMENT_TAGS = ("think", "answer")  # <think>...</think>, <answer>...</answer>
SHARE_KINDS = ("image", "text", "special")
SYSTEM_HEADER = "<|im_start|>system"
TURN_END = "<|im_end|>"

# Sink categories a page can leave out of the colour scale (bit flags, one int per sequence position).
SINK_SPECIAL = 1  # the tokenizer's special tokens: chat markers, vision start/end
SINK_FIRST = 2  # position 0, where attention sinks gather
SINK_SYSTEM = 4  # the system turn of the chat template


@dataclass(frozen=True)
class Segment:
    name: str  # "think" | "answer"
    first: int  # first step inside the segment (its opening tag included)
    last: int  # last step inside it (its closing tag included; the last step when it never closes)


def answer_segments(trace: Trace) -> list[Segment]:
    """The ``<think>`` / ``<answer>`` spans of the generated text, as step ranges, in text order."""
    texts = trace.token_texts[trace.prompt_len :]
    ends = np.cumsum([len(t) for t in texts])  # (T,) character offset where each step's text ends
    text = "".join(texts)
    found = []
    for name in SEGMENT_TAGS:
        at = 0
        while (start := text.find(f"<{name}>", at)) >= 0:
            close = text.find(f"</{name}>", start)
            stop = len(text) if close < 0 else close + len(name) + 3  # one past the closing '>'
            first = int(np.searchsorted(ends, start, side="right"))
            last = int(np.searchsorted(ends, stop - 1, side="right"))
            found.append(Segment(name, first, min(last, len(texts) - 1)))
            at = stop
    return sorted(found, key=lambda s: s.first)


def attention_shares(trace: Trace, layer: int) -> np.ndarray:
    """(T, 3) share of each step's row on image / text / special tokens (rows renormalised to sum 1)."""
    kinds = np.asarray(trace.token_kinds)
    shares = np.zeros((trace.n_steps, len(SHARE_KINDS)), dtype=np.float64)
    for t in range(trace.n_steps):
        row = np.clip(trace.row(layer, t).astype(np.float64), 0.0, None)  # (prompt_len + t,)
        total = row.sum()
        if total <= 0:
            continue
        for k, kind in enumerate(SHARE_KINDS):
            shares[t, k] = row[kinds[: len(row)] == kind].sum() / total
    return shares


def sink_flags(trace: Trace) -> np.ndarray:
    """(S,) uint8 sink categories per position (SINK_* bits)."""
    flags = np.zeros(len(trace.token_ids), dtype=np.uint8)
    flags[np.asarray(trace.token_kinds) == "special"] |= SINK_SPECIAL
    if len(flags):
        flags[0] |= SINK_FIRST
    first, last = system_turn(trace.token_texts)
    flags[first:last] |= SINK_SYSTEM
    return flags


def system_turn(texts: list[str]) -> tuple[int, int]:
    """[first, last) positions of a leading ``<|im_start|>system ... <|im_end|>`` turn; (0, 0) if none."""
    ends = np.cumsum([len(t) for t in texts])
    text = "".join(texts)
    start = text.find(SYSTEM_HEADER)
    if start < 0:
        return 0, 0
    stop = text.find(TURN_END, start)
    stop = len(text) if stop < 0 else stop + len(TURN_END)
    return int(np.searchsorted(ends, start, side="right")), int(np.searchsorted(ends, stop - 1, side="right")) + 1


def key_frames(trace: Trace, layer: int) -> list[tuple[int, str]]:
    """[(step, label)]: the first answer token, the strongest image attention and the last token.

    "First answer token": the first step after the ``<answer>`` tag (step 0 without one). "Strongest image
    attention": the step whose row puts the largest share on one image cell (where the model looked hardest at
    one place; a step that spreads a large total share thinly says less). "Last token": the last step that is not
    a special token (the end-of-turn marker says little). Steps that coincide share one frame.
    """
    picks: dict[int, list[str]] = {}
    picks.setdefault(first_answer_step(trace), []).append("first answer token")
    if trace.images:
        picks.setdefault(int(np.argmax(peak_image_shares(trace, layer))), []).append("strongest image attention")
    kinds = trace.token_kinds[trace.prompt_len :]
    last = max((t for t, kind in enumerate(kinds) if kind != "special"), default=trace.n_steps - 1)
    picks.setdefault(last, []).append("last token")
    return [(step, " · ".join(labels)) for step, labels in sorted(picks.items())]


def peak_image_shares(trace: Trace, layer: int) -> np.ndarray:
    """(T,) each step's largest weight on a single image token, as a share of its row."""
    positions = np.concatenate([np.asarray(g.positions, dtype=np.int64) for g in trace.images])
    peaks = np.zeros(trace.n_steps, dtype=np.float64)
    for t in range(trace.n_steps):
        row = np.clip(trace.row(layer, t).astype(np.float64), 0.0, None)  # (prompt_len + t,)
        inside = positions[positions < len(row)]
        if row.sum() > 0 and len(inside):
            peaks[t] = row[inside].max() / row.sum()
    return peaks


def first_answer_step(trace: Trace) -> int:
    """The step of the first token written after ``<answer>``; 0 when there is no answer tag."""
    answers = [s for s in answer_segments(trace) if s.name == "answer"]
    if not answers:
        return 0
    texts = trace.token_texts[trace.prompt_len :]
    seg = answers[0]
    ends = np.cumsum([len(t) for t in texts])
    tag_end = "".join(texts).find("<answer>") + len("<answer>")
    step = int(np.searchsorted(ends, tag_end, side="right"))  # the token holding the character after the tag
    return min(max(step, seg.first), trace.n_steps - 1)
