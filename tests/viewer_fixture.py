"""A small hand-made trace for the viewer tests: chat prompt with two images, hostile token text, two layers.

No model: the rows are seeded random softmax rows with a planted peak, so every expected number is computed from
the trace itself, never typed in.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from attnviz.trace import ImageGeometry, Trace

SCRIPT_TOKEN = "<script>window.__pwned = 1; alert(1)</script>"
IMG_TOKEN = '"><img src=x onerror="window.__pwned=2">'
PEAK = (1, 1, 2)  # (image index, row, column) of the planted peak at PEAK_STEP
PEAK_STEP = 4
IMAGE_RGB = ((200, 200, 200), (40, 60, 90))  # uniform images: a tinted pixel's colour is known exactly


def _prompt() -> tuple[list[str], list[str], list[ImageGeometry]]:
    texts = ["<|im_start|>", "system", "\n", "You are helpful.", "<|im_end|>", "\n", "<|im_start|>", "user", "\n"]
    kinds = ["special", "text", "text", "text", "special", "text", "special", "text", "text"]
    images = []
    for index, (gh, gw) in enumerate([(2, 3), (2, 4)]):
        texts.append("<|vision_start|>")
        kinds.append("special")
        images.append(ImageGeometry(index, len(texts), gh, gw, 28 * gh, 28 * gw))
        texts += ["<|image_pad|>"] * (gh * gw)
        kinds += ["image"] * (gh * gw)
        texts.append("<|vision_end|>")
        kinds.append("special")
    body = ["Where", " is", " the", "\t$x$", " marker", "?", SCRIPT_TOKEN, "\n", "<|im_end|>", "\n",
            "<|im_start|>", "assistant", "\n"]
    texts += body
    kinds += ["special" if t.startswith("<|") else "text" for t in body]
    return texts, kinds, images


ANSWER = ["<think>", "I", " look", "</think>", "<answer>", "(", "2", ",", "1", ")", IMG_TOKEN, "</answer>",
          "<|im_end|>"]


def make_trace(layers=(1, 3), seed: int = 0) -> Trace:
    texts, kinds, images = _prompt()
    prompt_len = len(texts)
    texts = texts + ANSWER
    kinds = kinds + ["special" if t == "<|im_end|>" else "text" for t in ANSWER]
    n_steps, width = len(ANSWER), len(texts) - 1
    rng = np.random.default_rng(seed)
    rows = {}
    for layer in layers:
        full = np.zeros((n_steps, width), dtype=np.float32)
        for t in range(n_steps):
            logits = rng.normal(0.0, 1.0, prompt_len + t)
            if t == PEAK_STEP:  # the peak: image PEAK[0], cell (PEAK[1], PEAK[2])
                g = images[PEAK[0]]
                logits[g.token_start + PEAK[1] * g.grid_w + PEAK[2]] += 6.0 + layer
            probs = np.exp(logits - logits.max())
            full[t, : prompt_len + t] = probs / probs.sum()
        rows[layer] = full
    return Trace(
        token_ids=list(range(len(texts))),
        token_texts=texts,
        token_kinds=kinds,
        prompt_len=prompt_len,
        images=images,
        rows=rows,
    )


def make_images(trace: Trace) -> list[Image.Image]:
    return [Image.new("RGB", (g.pixel_w, g.pixel_h), IMAGE_RGB[g.index]) for g in trace.images]


def text_start(trace: Trace) -> int:
    """Where the text panel starts: the first token after the last image (the question)."""
    last = trace.images[-1]
    return last.token_start + last.n_tokens + 1
