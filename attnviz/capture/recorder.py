"""Collects last-query attention rows per layer while a model runs; one recorder per generation."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator

import numpy as np
import torch

_ACTIVE: contextvars.ContextVar[RowRecorder | None] = contextvars.ContextVar("attnviz_recorder", default=None)


class RowRecorder:
    """Keeps, per captured layer, one (kv_len,) fp32 row per forward call (batch element 0).

    The prefill call's row is the prompt's last query (it produced generated token 0); each decode call's row is
    the single new query (it produced the next token). So after generating T tokens there are T rows per layer.
    """

    def __init__(self, layers: Iterable[int]):
        self.layers = sorted(set(layers))
        self.steps: dict[int, list[np.ndarray]] = {layer: [] for layer in self.layers}

    def wants(self, layer_idx: int | None) -> bool:
        return layer_idx in self.steps

    def add(self, layer_idx: int, row: torch.Tensor) -> None:
        """row: (kv_len,) head-averaged probabilities of the last query."""
        self.steps[layer_idx].append(row.detach().to("cpu", torch.float32).numpy())

    def n_steps(self) -> int:
        return min((len(v) for v in self.steps.values()), default=0)

    def stacked(self, layer_idx: int, width: int | None = None) -> np.ndarray:
        """(T, width) float32, row t left-aligned and zero-padded; width defaults to the longest row."""
        rows = self.steps[layer_idx]
        width = width or max(len(r) for r in rows)
        out = np.zeros((len(rows), width), dtype=np.float32)
        for t, row in enumerate(rows):
            out[t, : len(row)] = row[:width]
        return out


def active_recorder() -> RowRecorder | None:
    return _ACTIVE.get()


@contextlib.contextmanager
def recording(recorder: RowRecorder) -> Iterator[RowRecorder]:
    """Make ``recorder`` receive rows from every capture-enabled attention call inside the block."""
    token = _ACTIVE.set(recorder)
    try:
        yield recorder
    finally:
        _ACTIVE.reset(token)
