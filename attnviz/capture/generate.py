"""Generation with capture: the model's own generate(), with the recorder listening."""

from __future__ import annotations

import logging
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers.generation.streamers import BaseStreamer

from attnviz.capture.batch import BatchSink, EndWatcher, answer_tokens, end_token_ids
from attnviz.capture.recorder import RowRecorder, recording

log = logging.getLogger(__name__)


class _ProgressStreamer(BaseStreamer):
    """Advances a tqdm bar once per generated token (generate's first put() is the prompt)."""

    def __init__(self, total: int):
        self.bar = tqdm(total=total, desc="generate", unit="tok", leave=False)
        self._seen_prompt = False

    def put(self, value: torch.Tensor) -> None:
        if self._seen_prompt:
            self.bar.update(1)
        self._seen_prompt = True

    def end(self) -> None:
        self.bar.close()


def sampling_kwargs(gen_cfg: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"max_new_tokens": int(gen_cfg.max_new_tokens), "do_sample": bool(gen_cfg.do_sample)}
    if gen_cfg.do_sample:
        kwargs.update(temperature=gen_cfg.temperature, top_p=gen_cfg.top_p, top_k=gen_cfg.top_k)
    else:  # greedy: unset the checkpoint's sampling defaults so generate() does not warn about them
        kwargs.update(temperature=None, top_p=None, top_k=None)
    return kwargs


def generate_with_capture(model: Any, inputs: dict[str, Any], recorder: RowRecorder, gen_cfg: Any) -> list[int]:
    """Generate for a batch of one while ``recorder`` takes one row per layer per token; returns the new ids (T,)."""
    torch.manual_seed(int(gen_cfg.seed))
    prompt_len = inputs["input_ids"].shape[1]
    streamer = _ProgressStreamer(int(gen_cfg.max_new_tokens))
    with torch.inference_mode(), recording(recorder):
        # disable_compile: static caches auto-compile on GPU, and the recorder's per-layer hand-off is Python code
        out = model.generate(**inputs, streamer=streamer, disable_compile=True, **sampling_kwargs(gen_cfg))  # (1, S)
    generated = out[0, prompt_len:].tolist()
    if recorder.n_steps() != len(generated):
        raise RuntimeError(f"captured {recorder.n_steps()} rows for {len(generated)} generated tokens")
    log.info("generated %d tokens", len(generated))
    return generated


def generate_batch_with_capture(
    model: Any, inputs: dict[str, Any], recorder: RowRecorder, gen_cfg: Any, sink: BatchSink, progress: bool = True
) -> list[list[int]]:
    """Generate for a left-padded batch (B, P) while ``recorder`` hands rows to ``sink`` (which drops a sample's rows
    once its answer has ended); returns each sample's answer ids, up to and including its end token."""
    torch.manual_seed(int(gen_cfg.seed))
    prompt_len = inputs["input_ids"].shape[1]
    end_ids = end_token_ids(model)
    watcher = EndWatcher(sink, end_ids, int(gen_cfg.max_new_tokens), progress)
    with torch.inference_mode(), recording(recorder):
        out = model.generate(**inputs, streamer=watcher, disable_compile=True, **sampling_kwargs(gen_cfg))  # (B, S)
    answers = [answer_tokens(row, end_ids) for row in out[:, prompt_len:].tolist()]
    log.info("generated %s tokens for a batch of %d", "/".join(str(len(a)) for a in answers), len(answers))
    return answers
