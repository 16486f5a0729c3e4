"""What is computed from a trace, in one model-free place: segments, shares, key steps, quoting, row offsets (the
chat template's markers and the attention sinks: :mod:`attnviz.sinks`).

The renderer, the viewer, the poster, the share plot and the sweep summary all call these functions; none of them
computes these things on its own. Imports numpy and :mod:`attnviz.chat` only (no torch, transformers, Hydra or
matplotlib), so anything that reads a finished trace stays light.

Steps are answer-token indices: step ``t`` is generated (or replayed) token ``t`` and ``trace.row(layer, t)`` is
the row that produced it. Calculations over rows take blocks of whole rows, ``(n, K)`` float32 zero-padded
(:func:`row_blocks`), read straight from the memory-mapped ragged store: they are vectorised over steps and their
memory is bounded by the block size, not by the answer's length.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from attnviz.trace import ImageGeometry, Trace

TOKEN_KINDS = ("text", "image", "special")  # a token's kind in a trace
SHARE_KINDS = ("image", "text", "special")  # the order shares by kind are reported and plotted in
SEGMENT_TAGS = ("think", "answer")  # <think>...</think>, <answer>...</answer>
ROW_BLOCK = 256  # steps per block of dense rows (256 x 4k keys x 4 bytes = 4 MB)
MAX_QUOTE_CHARS = 40


# --- text: offsets, quoting -------------------------------------------------------------------------------


def char_offsets(texts: Sequence[str]) -> np.ndarray:
    """(S + 1,) int64: character offset where each token starts in ``"".join(texts)``, then the total length."""
    return np.concatenate([[0], np.cumsum([len(t) for t in texts], dtype=np.int64)]).astype(np.int64)


def token_at(offsets: np.ndarray, char: int) -> int:
    """Index of the (non-empty) token whose span ``[offsets[i], offsets[i+1])`` holds character ``char``."""
    return int(np.searchsorted(offsets, char, side="right")) - 1


def quote(text: str, limit: int = MAX_QUOTE_CHARS) -> str:
    """A token as headers, captions and plot labels show it: quoted, line breaks visible, long tokens cut."""
    shown = text.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    shown = re.sub("[\ud800-\udfff]", lambda m: f"\\u{ord(m.group()):04x}", shown)  # a broken token: no font has it
    if len(shown) > limit:
        shown = shown[: limit - 1] + "…"
    return f'"{shown}"'


# --- segments ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    name: str  # "think" | "answer"
    first: int  # first token inside the segment (its opening tag included)
    last: int  # last token inside it (its closing tag included; the last token when it never closes)


def segments(texts: Sequence[str]) -> list[Segment]:
    """The ``<think>`` / ``<answer>`` spans of ``texts`` as token ranges, in text order.

    Tags are found in the joined text, so a tag split over several tokens (``<``, ``think``, ``>``) counts. An
    unclosed segment runs to the end.
    """
    offsets = char_offsets(texts)
    text = "".join(texts)
    found = []
    for name in SEGMENT_TAGS:
        for opened in re.finditer(f"<{name}>", text):
            close = text.find(f"</{name}>", opened.end())
            stop = len(text) if close < 0 else close + len(name) + 3  # one past the closing '>'
            first, last = token_at(offsets, opened.start()), token_at(offsets, stop - 1)
            found.append(Segment(name, first, min(last, len(texts) - 1)))
    return sorted(found, key=lambda s: (s.first, s.name))


def segment_labels(texts: Sequence[str]) -> list[str]:
    """Per token: ``"think"`` / ``"answer"`` when it lies in (or opens or closes) such a segment, else ``""``; a
    token touching two segments takes the first."""
    labels = [""] * len(texts)
    for seg in segments(texts):
        for i in range(seg.first, seg.last + 1):
            labels[i] = labels[i] or seg.name
    return labels


def answer_segments(trace: Trace) -> list[Segment]:
    """The segments of the answer, in steps."""
    return segments(trace.token_texts[trace.prompt_len :])


def first_answer_step(trace: Trace) -> int:
    """The step of the first token written after ``<answer>``; 0 when there is no answer tag."""
    texts = trace.token_texts[trace.prompt_len :]
    at = "".join(texts).find("<answer>")
    if at < 0 or not texts:
        return 0
    step = token_at(char_offsets(texts), at + len("<answer>"))  # the token holding the character after the tag
    return min(max(step, 0), trace.n_steps - 1)


# --- rows ---------------------------------------------------------------------------------------------------


def row_offset(step: int, prompt_len: int) -> int:
    """Values before row ``step`` of a ragged store, where row i holds ``prompt_len + i`` values."""
    return step * prompt_len + step * (step - 1) // 2


def row_starts(prompt_len: int, n_steps: int) -> np.ndarray:
    """(n_steps + 1,) int64 offsets of every row of a ragged store, then its total length."""
    steps = np.arange(n_steps + 1, dtype=np.int64)
    return steps * prompt_len + steps * (steps - 1) // 2


def dense_rows(trace: Trace, layer: int, start: int, stop: int) -> np.ndarray:
    """(stop - start, S - 1) float32: head-averaged rows ``start..stop-1``, zero past each row's length."""
    rows, width = trace.rows[layer], len(trace.token_ids) - 1
    lengths = trace.prompt_len + np.arange(start, stop)  # (n,)
    valid = np.arange(width)[None, :] < lengths[:, None]  # (n, S - 1)
    out = np.zeros((stop - start, width), dtype=np.float32)
    if isinstance(rows, np.ndarray):  # a trace built in memory: dense (T, S - 1)
        out[valid] = np.asarray(rows[start:stop, :width], dtype=np.float32)[valid]
    else:  # ragged store (attnviz.trace_store.RaggedRows): rows lie back to back, row-major, as `valid` orders them
        out[valid] = rows.data[row_offset(start, trace.prompt_len) : row_offset(stop, trace.prompt_len)]
    return out


def row_blocks(trace: Trace, layer: int, block: int = ROW_BLOCK) -> Iterator[tuple[int, np.ndarray]]:
    """(first step, (n, S - 1) float32 rows) for consecutive blocks of at most ``block`` steps."""
    for start in range(0, trace.n_steps, block):
        yield start, dense_rows(trace, layer, start, min(start + block, trace.n_steps))


# --- shares ---------------------------------------------------------------------------------------------------


def kind_shares(trace: Trace, layer: int) -> np.ndarray:
    """(T, 3) share of each step's row on image / text / special tokens (SHARE_KINDS), each row renormalised."""
    kinds = np.asarray(trace.token_kinds[:-1], dtype=object)  # (S - 1,) the keys a row can reach
    onehot = np.stack([kinds == kind for kind in SHARE_KINDS], axis=1).astype(np.float64)  # (S - 1, 3)
    shares = np.zeros((trace.n_steps, len(SHARE_KINDS)), dtype=np.float64)
    for start, rows in row_blocks(trace, layer):
        mass = np.clip(rows, 0.0, None).astype(np.float64) @ onehot  # (n, 3)
        total = mass.sum(axis=1, keepdims=True)
        shares[start : start + len(rows)] = np.divide(mass, total, out=np.zeros_like(mass), where=total > 0)
    return shares


def mean_kind_shares(trace: Trace, layer: int) -> dict[str, float]:
    """Each kind's share of the row, averaged over the steps."""
    mean = kind_shares(trace, layer).mean(axis=0) if trace.n_steps else np.zeros(len(SHARE_KINDS))
    return {kind: float(v) for kind, v in zip(SHARE_KINDS, mean, strict=True)}


def image_positions(images: Sequence[ImageGeometry]) -> np.ndarray:
    """(I,) int64 sequence positions of every image's cell tokens, images in order."""
    return np.concatenate([np.asarray(g.positions, dtype=np.int64) for g in images] or [np.zeros(0, np.int64)])


def peak_image_shares(trace: Trace, layer: int) -> np.ndarray:
    """(T,) each step's largest weight on a single image cell token, as a share of its whole row."""
    positions = image_positions(trace.images)
    peaks = np.zeros(trace.n_steps, dtype=np.float64)
    if not len(positions):
        return peaks
    for start, rows in row_blocks(trace, layer):
        rows = np.clip(rows, 0.0, None).astype(np.float64)
        total = rows.sum(axis=1)
        top = rows[:, positions[positions < rows.shape[1]]].max(axis=1)
        peaks[start : start + len(rows)] = np.divide(top, total, out=np.zeros_like(top), where=total > 0)
    return peaks


def key_frames(trace: Trace, layer: int) -> list[tuple[int, str]]:
    """[(step, label)]: the first answer token, the strongest image attention and the last token.

    "Strongest image attention": the step whose row puts the largest share on one image cell (where the model
    looked hardest at one place; a step that spreads a large total share thinly says less). "Last token": the last
    step that is not a special token (the end-of-turn marker says little). Steps that coincide share one frame.
    """
    picks: dict[int, list[str]] = {}
    picks.setdefault(first_answer_step(trace), []).append("first answer token")
    if trace.images:
        picks.setdefault(int(np.argmax(peak_image_shares(trace, layer))), []).append("strongest image attention")
    kinds = trace.token_kinds[trace.prompt_len :]
    last = max((t for t, kind in enumerate(kinds) if kind != "special"), default=trace.n_steps - 1)
    picks.setdefault(last, []).append("last token")
    return [(step, " · ".join(labels)) for step, labels in sorted(picks.items())]

