"""Collects attention rows per layer while a model runs and hands them, step by step, to a sink.

Row semantics: the row of step ``t`` is the attention of the query at absolute position ``prompt_len - 1 + t`` over
keys ``0 .. prompt_len - 1 + t``; that query's output chose answer token ``t``. In generation every forward call
contributes the last query (the prefill call's is the prompt's last position, step 0); in replay one forward call
contributes the rows of every answer position.

Positions are counted per layer from the calls seen, so the rows land at absolute key positions whatever the cache
returns: static caches hand back ``max_cache_len`` slots (the unfilled tail is dropped) and sliding-window layers a
cropped window (its first key is placed at ``seen - kv_len``).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

_ACTIVE: contextvars.ContextVar[RowRecorder | None] = contextvars.ContextVar("attnviz_recorder", default=None)
FLUSH_BYTES = 64 * 2**20  # rows waiting on the device beyond this are copied out early (long replays)
STORAGE_DTYPES = {"float16": torch.float16, "float32": torch.float32}


class RowSink(Protocol):
    """Receives rows in step order per layer: row (B, prompt_len + step), heads (B, H, prompt_len + step)."""

    dtype: str

    def write(self, layer: int, step: int, row: np.ndarray, heads: np.ndarray | None) -> None: ...


class MemorySink:
    """Keeps every row in memory (tests, short runs): ``rows[layer][step]`` is (B, prompt_len + step)."""

    def __init__(self, dtype: str = "float32"):
        self.dtype = dtype
        self.rows: dict[int, list[np.ndarray]] = {}
        self.heads: dict[int, list[np.ndarray]] = {}

    def write(self, layer: int, step: int, row: np.ndarray, heads: np.ndarray | None) -> None:
        steps = self.rows.setdefault(layer, [])
        if step != len(steps):
            raise RuntimeError(f"layer {layer}: row of step {step} arrived after {len(steps)} rows")
        steps.append(np.array(row))
        if heads is not None:
            self.heads.setdefault(layer, []).append(np.array(heads))


@dataclass(frozen=True)
class CallPlan:
    """What one attention call contributes: absolute query positions and where its keys sit."""

    pos0: int  # absolute position of the call's first query
    positions: range  # absolute positions of the query rows to capture
    kv_start: int  # absolute position of the first key the call sees
    kv_keep: int  # keys to keep (static caches carry unfilled slots at the end)


class RowRecorder:
    """Per-layer position bookkeeping, device-side buffering and one host copy per step."""

    def __init__(
        self,
        layers: Iterable[int],
        sink: RowSink | None = None,
        head_layers: Iterable[int] = (),
        answer: tuple[int, int] | None = None,
    ):
        """``answer=(prompt_len, n_tokens)`` switches to replay: capture the rows that produce those tokens."""
        self.layers = sorted(set(layers))
        self.head_layers = set(head_layers) & set(self.layers)
        self.sink: RowSink = sink if sink is not None else MemorySink()
        self.answer = answer
        self.prompt_len: int | None = answer[0] if answer else None
        self.seen = dict.fromkeys(self.layers, 0)
        self.n_rows = dict.fromkeys(self.layers, 0)
        self._pending: list[tuple[int, range, int, torch.Tensor, torch.Tensor | None]] = []
        self._pending_bytes = 0

    def wants(self, layer_idx: int | None) -> bool:
        return layer_idx in self.seen

    def n_steps(self) -> int:
        return min(self.n_rows.values(), default=0)

    def plan(self, layer: int, q_len: int, kv_len: int) -> CallPlan:
        pos0 = self.seen[layer]
        total = pos0 + q_len  # tokens seen by this layer after this call
        self.seen[layer] = total
        if self.prompt_len is None:
            self.prompt_len = q_len  # generation: the first call is the prefill
        if self.answer is None:
            positions = range(total - 1, total)
        else:
            first = self.prompt_len - 1
            positions = range(max(pos0, first), min(total, first + self.answer[1]))
        kv_start = max(0, total - kv_len)  # > 0 only for a cropped sliding window
        return CallPlan(pos0, positions, kv_start, kv_keep=min(kv_len, total - kv_start))

    def add(self, layer: int, positions: range, kv_start: int, probs: torch.Tensor) -> None:
        """probs: (B, H, n, K) fp32 rows of the queries at ``positions``; kept on the device until a flush."""
        dtype = STORAGE_DTYPES[self.sink.dtype]
        mean = probs.mean(dim=1).to(dtype)  # (B, n, K)
        heads = probs.to(dtype) if layer in self.head_layers else None
        self._pending.append((layer, positions, kv_start, mean, heads))
        self._pending_bytes += mean.nbytes + (heads.nbytes if heads is not None else 0)
        self.n_rows[layer] += len(positions)
        if layer == self.layers[-1] or self._pending_bytes > FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """One device->host copy for everything pending, then rows go to the sink in order."""
        if not self._pending:
            return
        tensors = [t for item in self._pending for t in item[3:] if t is not None]
        flat = torch.cat([t.reshape(-1) for t in tensors]).cpu().numpy()
        host = iter(np.split(flat, np.cumsum([t.numel() for t in tensors])[:-1]))
        for layer, positions, kv_start, mean, heads in self._pending:
            mean_np = next(host).reshape(mean.shape)  # (B, n, K)
            heads_np = next(host).reshape(heads.shape) if heads is not None else None  # (B, H, n, K)
            for i, pos in enumerate(positions):
                row = place_row(mean_np[:, i], kv_start, pos)
                head_row = place_row(heads_np[:, :, i], kv_start, pos) if heads_np is not None else None
                self.sink.write(layer, pos - (self.prompt_len - 1), row, head_row)
        self._pending.clear()
        self._pending_bytes = 0


def place_row(values: np.ndarray, kv_start: int, pos: int) -> np.ndarray:
    """values (..., K) over keys kv_start.. -> (..., pos + 1) over keys 0..pos (zeros outside the window)."""
    length = pos + 1
    n = min(values.shape[-1], length - kv_start)
    if kv_start == 0 and n == values.shape[-1] == length:
        return values
    out = np.zeros((*values.shape[:-1], length), dtype=values.dtype)
    out[..., kv_start : kv_start + n] = values[..., :n]
    return out


def active_recorder() -> RowRecorder | None:
    return _ACTIVE.get()


@contextlib.contextmanager
def recording(recorder: RowRecorder) -> Iterator[RowRecorder]:
    """Make ``recorder`` receive rows from every capture-enabled attention call inside the block."""
    token = _ACTIVE.set(recorder)
    try:
        yield recorder
        recorder.flush()
    finally:
        _ACTIVE.reset(token)
