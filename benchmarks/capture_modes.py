"""One benchmark process: build the random bench model, run one capture mode, print its figures as JSON.

Kept apart from ``capture.py`` (the side-by-side driver). Each mode lives in its own process (its own peak memory
and allocator state) and runs once per request, so the driver can interleave the modes' repeats: load from other
work on the machine then falls on every mode alike.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor

from attnviz.capture import RowRecorder, recording, register_capture
from attnviz.capture.replay import replay_with_capture
from attnviz.demo import build
from attnviz.metrics import key_classes, metric_rows
from attnviz.trace import ImageGeometry, Trace, load_trace, prune_trace, trace_header
from attnviz.trace_store import TraceWriter

IMAGE_PX = 672  # 672 / 28 = 24 -> 24 x 24 = 576 image tokens
SHAPES: dict[str, dict[str, Any]] = {
    # text hidden 512, 8 layers, 8 heads / 2 kv heads (head dim 64)
    "bench": {"text": {"hidden_size": 512, "intermediate_size": 1536, "num_hidden_layers": 8,
                       "num_attention_heads": 8, "num_key_value_heads": 2, "mrope_section": [8, 12, 12]},
              "vision": {"depth": 2, "embed_dim": 128, "num_heads": 4, "mlp_ratio": 2}, "vocab": None},
    # Qwen2-VL-7B's shapes (random weights)
    "7b": {"text": {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                    "num_attention_heads": 28, "num_key_value_heads": 4, "mrope_section": [16, 24, 24]},
           "vision": {"depth": 32, "embed_dim": 1280, "num_heads": 16, "mlp_ratio": 4}, "vocab": 152064},
}


def bench_config(shape: str, tokenizer: Any) -> Qwen2VLConfig:
    spec = SHAPES[shape]
    text = dict(spec["text"])
    mrope = text.pop("mrope_section")
    ids = tokenizer.convert_tokens_to_ids
    special = {"image_token_id": ids("<|image_pad|>"), "video_token_id": ids("<|video_pad|>"),
               "vision_start_token_id": ids("<|vision_start|>"), "vision_end_token_id": ids("<|vision_end|>")}
    eos, pad = ids("<|im_end|>"), ids("<|endoftext|>")
    text.update(vocab_size=spec["vocab"] or len(tokenizer), max_position_embeddings=32768,
                rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": mrope},
                bos_token_id=pad, eos_token_id=eos, pad_token_id=pad)
    vision = {**spec["vision"], "hidden_size": text["hidden_size"]}
    return Qwen2VLConfig(text_config=text, vision_config=vision, bos_token_id=pad, eos_token_id=eos,
                         pad_token_id=pad, **special)


def build_model(shape: str, device: str, dtype: torch.dtype) -> tuple[Any, Any]:
    processor = build.build_processor()
    processor.image_processor = Qwen2VLImageProcessor(min_pixels=IMAGE_PX**2, max_pixels=IMAGE_PX**2)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2VLForConditionalGeneration._from_config(bench_config(shape, processor.tokenizer), dtype=dtype)
    return model.eval(), processor


def build_inputs(processor: Any, prompt_tokens: int, device: str) -> dict[str, Any]:
    """One IMAGE_PX-square image (576 tokens) and filler text up to about ``prompt_tokens`` tokens."""
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (IMAGE_PX, IMAGE_PX, 3), dtype=np.uint8))
    filler = "Find the red marker on the map, then give its cell as (column,row). "
    words, inputs = "", None
    while inputs is None or inputs["input_ids"].shape[1] < prompt_tokens:
        words += filler
        prompt = build.build_prompt(processor, 1, words)
        inputs = processor(text=[prompt], images=[image], return_tensors="pt")
    return {k: v.to(device) for k, v in inputs.items()}


def set_text_attention(model: Any, name: str, vision: str) -> None:
    model.set_attn_implementation({"text_config": name, "vision_config": vision})


class PeakMemory:
    """Peak resident memory (and CUDA allocation) above the level at entry, sampled every 2 ms."""

    def __enter__(self) -> PeakMemory:
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.base = self.peak = self._rss()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
            self.cuda_base = torch.cuda.memory_allocated()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _poll(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        self.extra_mb = (self.peak - self.base) / 2**20
        self.cuda_extra_mb = (
            (torch.cuda.max_memory_allocated() - self.cuda_base) / 2**20 if torch.cuda.is_available() else None
        )


def greedy(n_tokens: int) -> dict[str, Any]:
    """Exactly n_tokens new tokens (EOS suppressed), greedy."""
    return {"max_new_tokens": n_tokens, "min_new_tokens": n_tokens, "do_sample": False,
            "temperature": None, "top_p": None, "top_k": None}


def run_once(mode: str, model: Any, inputs: dict[str, Any], n_tokens: int, answer: list[int], out_dir: Path) -> int:
    """Run ``mode`` once; returns the bytes it keeps (attention tensors in memory, or row files on disk)."""
    layers = list(range(model.config.text_config.num_hidden_layers))
    if mode == "plain":
        model.generate(**inputs, **greedy(n_tokens))
        return 0
    if mode == "eager":
        out = model.generate(**inputs, **greedy(n_tokens), output_attentions=True, return_dict_in_generate=True)
        return sum(a.nbytes for step in out.attentions for a in step)
    chosen = layers[-1:] if mode == "capture_one" else layers
    writer = TraceWriter(out_dir, chosen, dtype="float16")
    prompt_len = inputs["input_ids"].shape[1]
    if mode == "replay":
        replay_with_capture(model, inputs, answer, RowRecorder(chosen, writer, answer=(prompt_len, len(answer))))
        ids = inputs["input_ids"][0].tolist() + answer
    else:
        with recording(RowRecorder(chosen, writer)):
            ids = model.generate(**inputs, **greedy(n_tokens))[0].tolist()
    kept = writer.kept_bytes()
    trace = bench_trace(model, inputs, ids)
    writer.finish(trace_header(trace))
    if mode == "capture_all_metrics":  # every metric of every layer from the rows on disk, then keep one layer
        measured = load_trace(out_dir)
        kinds = np.zeros(len(ids), dtype=bool)
        metric_rows(measured, layers, key_classes(measured, kinds, None))
        prune_trace(out_dir, layers[-1:])
    return kept


def bench_trace(model: Any, inputs: dict[str, Any], ids: list[int]) -> Trace:
    """Token kinds and the image's geometry of a bench run (one image, Qwen2-VL layout)."""
    image_id = model.config.image_token_id
    kinds = ["image" if i == image_id else "text" for i in ids]
    start = kinds.index("image")
    _, h, w = (int(v) // 2 for v in inputs["image_grid_thw"][0].tolist())  # patches -> merged 2x2 cells
    geometry = ImageGeometry(0, start, h, w, h * 28, w * 28)
    return Trace(ids, [""] * len(ids), kinds, inputs["input_ids"].shape[1], images=[geometry])


def text_attention_for(mode: str, kernel: str) -> str:
    if mode == "plain":
        return kernel
    return "eager" if mode == "eager" else register_capture(kernel)


def prepare(mode: str, args: Any) -> tuple[Any, dict[str, Any], list[int]]:
    """Model with the mode's text attention, the inputs and (replay) the answer plain greedy generation writes."""
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    model, processor = build_model(args.shape, args.device, dtype)
    inputs = build_inputs(processor, args.prompt_tokens, args.device)
    answer: list[int] = []
    if mode == "replay":
        set_text_attention(model, args.kernel, args.vision_kernel)
        with torch.inference_mode():
            answer = model.generate(**inputs, **greedy(args.new_tokens))[0, inputs["input_ids"].shape[1]:].tolist()
    set_text_attention(model, text_attention_for(mode, args.kernel), args.vision_kernel)
    return model, inputs, answer


class OwnTime:
    """Seconds spent inside attnviz's capture code (row maths, host copy, file appends), outermost calls only."""

    total = 0.0
    depth = 0

    @classmethod
    def wrap(cls, fn):
        def timed(*args, **kwargs):
            cls.depth += 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                cls.depth -= 1
                if cls.depth == 0:
                    cls.total += time.perf_counter() - start

        return timed


def instrument_capture() -> None:
    """Time the capture's own work inside the same run: a share that load from other work cannot skew."""
    from attnviz.capture import attention, recorder

    attention.record_layer = OwnTime.wrap(attention.record_layer)
    recorder.RowRecorder.flush = OwnTime.wrap(recorder.RowRecorder.flush)


def timed_run(mode: str, model: Any, inputs: dict[str, Any], answer: list[int], args: Any, out_dir: Path) -> dict:
    OwnTime.total = 0.0
    with PeakMemory() as mem, torch.inference_mode():
        start = time.perf_counter()
        kept = run_once(mode, model, inputs, args.new_tokens, answer, out_dir)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    # on CUDA the host copy also waits for queued kernels, so the own share is only reported on CPU
    own = OwnTime.total / elapsed if args.device == "cpu" else None
    return {"time_s": elapsed, "extra_rss_mb": mem.extra_mb, "cuda_extra_mb": mem.cuda_extra_mb, "kept_bytes": kept,
            "own_share": own}


def main_worker(mode: str, args: Any) -> None:
    """Serve runs on request: one line 'run' on stdin -> one JSON line on stdout; EOF ends the process."""
    torch.set_num_threads(args.threads)
    instrument_capture()
    model, inputs, answer = prepare(mode, args)
    print(json.dumps({"ready": True, "prompt_len": inputs["input_ids"].shape[1]}), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for i, line in enumerate(iter(input_line, None)):
            if line.strip() != "run":
                break
            print(json.dumps(timed_run(mode, model, inputs, answer, args, Path(tmp) / f"run{i}")), flush=True)


def input_line() -> str | None:
    try:
        return input()
    except EOFError:
        return None
