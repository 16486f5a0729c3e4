"""Batched generation, captured exactly per sample: left-padded collation, and a sink that hands each sample its rows.

Every sample is prepared alone (the processor's batch-of-one output: exactly the ids and pixels it gets in a run of
its own) and collated here: ids, attention mask and per-token type ids are left-padded to the longest prompt; every
other tensor (pixel values, image grids, image sizes) is concatenated in sample order, the order in which the model
hands image features to image tokens (row-major over the batch).

With left padding, sample ``i``'s tokens are the last ``P_i + t`` of the batch's ``P + t`` keys at step ``t`` and the
padded keys are masked (weight exactly 0), so its row is the batch row's tail: ``row[i, pad_i:]``. A sample whose
answer has ended (its end token was generated) stops receiving rows: nothing is stored for the pad tokens
``generate`` keeps feeding it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers.generation.streamers import BaseStreamer

from attnviz.capture.recorder import RowSink

PER_TOKEN = ("input_ids", "attention_mask")  # plus every "*token_type_ids": (1, P_i) per sample


def is_per_token(key: str) -> bool:
    return key in PER_TOKEN or key.endswith("token_type_ids")


def left_pad(value: torch.Tensor, width: int, fill: int) -> torch.Tensor:
    """(1, P_i) -> (1, width), ``fill`` on the left."""
    pad = width - value.shape[1]
    return torch.cat([value.new_full((value.shape[0], pad), fill), value], dim=1) if pad else value


def cat_padded(values: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate along dim 0, zero-padding the other dims to the largest (LLaVA-NeXT's per-image tile counts)."""
    shape = [max(v.shape[d] for v in values) for d in range(1, values[0].dim())]
    padded = []
    for value in values:
        grow = [x for d in reversed(range(1, value.dim())) for x in (0, shape[d - 1] - value.shape[d])]
        padded.append(torch.nn.functional.pad(value, grow) if any(grow) else value)
    return torch.cat(padded, dim=0)


def collate(inputs: Sequence[dict[str, Any]], pad_id: int) -> tuple[dict[str, Any], list[int]]:
    """Batch-of-one processor outputs -> one left-padded batch (B, P) and each sample's padding ``P - P_i``."""
    width = max(int(x["input_ids"].shape[1]) for x in inputs)
    pads = [width - int(x["input_ids"].shape[1]) for x in inputs]
    batch: dict[str, Any] = {}
    for key in dict.fromkeys(k for x in inputs for k in x):
        if is_per_token(key):
            fill = pad_id if key == "input_ids" else 0
            batch[key] = torch.cat([left_pad(_per_token(x, key), width, fill) for x in inputs], dim=0)  # (B, P)
        else:
            present = [x[key] for x in inputs if x.get(key) is not None]
            if not all(isinstance(v, torch.Tensor) for v in present):
                raise TypeError(f"cannot batch processor output {key!r} of type {type(present[0]).__name__}")
            batch[key] = cat_padded(present)
    return batch, pads


def _per_token(inputs: dict[str, Any], key: str) -> torch.Tensor:
    """A per-token tensor of one sample; one its processor did not give is 1 (mask) or 0 (type ids) throughout."""
    if key in inputs:
        return inputs[key]
    ids = inputs["input_ids"]
    return torch.ones_like(ids) if key == "attention_mask" else torch.zeros_like(ids)


class BatchSink:
    """A row sink for a left-padded batch: batch row (B, P + t) -> sample i's sink gets (1, P_i + t) while its answer
    lasts. ``last_step[i]``: the step of sample i's end token, once generated (None while it runs)."""

    def __init__(self, sinks: Sequence[RowSink], pads: Sequence[int]):
        if len(sinks) != len(pads) or not sinks:
            raise ValueError(f"{len(sinks)} sinks for {len(pads)} samples")
        self.sinks, self.pads = list(sinks), list(pads)
        self.dtype = self.sinks[0].dtype
        self.last_step: list[int | None] = [None] * len(sinks)

    def running(self, index: int, step: int) -> bool:
        last = self.last_step[index]
        return last is None or step <= last

    def write(self, layer: int, step: int, row: np.ndarray, heads: np.ndarray | None) -> None:
        """row (B, P + step), heads (B, H, P + step)."""
        for i, (sink, pad) in enumerate(zip(self.sinks, self.pads, strict=True)):
            if self.running(i, step):
                sink.write(layer, step, row[i : i + 1, pad:], None if heads is None else heads[i : i + 1, :, pad:])


class EndWatcher(BaseStreamer):
    """Sees each step's tokens (B,): the step where a sample generates an end token is its last (``sink.last_step``);
    the bar counts steps. generate's first put() is the prompt."""

    def __init__(self, sink: BatchSink, end_ids: Iterable[int], total: int, progress: bool = True):
        self.sink, self.end_ids = sink, set(end_ids)
        self.step = -1  # -1: the prompt comes first
        self.bar = tqdm(total=total, desc=f"generate x{len(sink.sinks)}", unit="step", leave=False,
                        disable=not progress)

    def put(self, value: torch.Tensor) -> None:
        if self.step >= 0:
            for i, token in enumerate(value.reshape(-1).tolist()):  # (B,)
                if self.sink.last_step[i] is None and token in self.end_ids:
                    self.sink.last_step[i] = self.step
            self.bar.update(1)
        self.step += 1

    def end(self) -> None:
        self.bar.close()


def end_token_ids(model: Any) -> list[int]:
    """The token ids that end an answer in ``generate`` (the generation config's eos_token_id, one or a list)."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        return []
    return [int(e) for e in (eos if isinstance(eos, list | tuple) else [eos])]


def answer_tokens(generated: Sequence[int], end_ids: Iterable[int]) -> list[int]:
    """One sample's generated ids, up to and including its first end token (what generating it alone returns)."""
    ends = set(end_ids)
    for position, token in enumerate(generated):
        if token in ends:
            return list(generated[: position + 1])
    return list(generated)
