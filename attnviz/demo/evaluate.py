"""Does the demo model look where it should? Accuracy plus per-layer attention figures on fresh samples.

For each sample: greedy generation (SDPA, as the tool runs), then ONE teacher-forced forward pass over prompt +
answer with eager attention and ``output_attentions`` (fine for measurement code; the tool itself never does
this). For each coordinate digit of the ``<answer>``, the head-averaged row that *produced* the digit (query =
digit position - 1) is restricted to the image tokens and renormalised, then:

- hit: its argmax image token is the marker's cell (in the marker's image when there are two);
- share: the weight on the marker's cell (uniform over one 8x8 image: 1/64 = 0.016).

When the generated text has no parsable answer (an untrained model), the reference answer is teacher-forced
instead, so the untrained baseline is measured on the same rows.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

import numpy as np
import torch

from attnviz.demo import build, synth

ANSWER_RE = re.compile(r"<answer>(?:image (\d) )?\((\d),(\d)\)</answer>")


@dataclass(frozen=True)
class LayerStats:
    layer: int
    hit_rate: float  # share of coordinate digits whose producing row peaks on the marker's cell
    target_share: float  # mean renormalised image attention on the marker's cell
    hit_rate_by_digit: tuple[float, float]  # (column digit, row digit)
    target_share_by_digit: tuple[float, float]


@dataclass(frozen=True)
class EvalResult:
    n_samples: int
    accuracy: float  # exact answer match
    layers: list[LayerStats]

    def best_layer(self) -> LayerStats:
        return max(self.layers, key=lambda s: (s.hit_rate, s.target_share))


@contextlib.contextmanager
def eager_text_attention(model):
    """Temporarily switch to eager attention so the language model can return attention weights.

    The vision tower goes eager too: otherwise it warns that SDPA cannot honour ``output_attentions``.
    """
    previous = {
        "": model.config._attn_implementation,
        "text_config": model.config.text_config._attn_implementation,
        "vision_config": model.config.vision_config._attn_implementation,
    }
    model.set_attn_implementation("eager")
    try:
        yield model
    finally:
        model.set_attn_implementation(previous)


@torch.no_grad()
def generate_answer(model, processor, sample: synth.Sample, max_new_tokens: int = 40) -> str:
    inputs = build.encode(processor, [sample.images], [sample.problem], None)
    out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)  # (1, S + T)
    return processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def digit_positions(token_texts: list[str]) -> list[int]:
    """Sequence positions of the column and row digits: the last two digit tokens ('(c,r)' ends the answer;
    an 'image k' index comes before it)."""
    return [i for i, t in enumerate(token_texts) if t.isdigit()][-2:]


@torch.no_grad()
def producing_rows(model, processor, sample: synth.Sample, answer_text: str) -> tuple[np.ndarray, list, np.ndarray]:
    """Teacher-forced rows: (L, 2, S) head-averaged rows producing the two digits, the digit positions, and
    the (N_img,) positions of all image tokens."""
    batch = build.encode(processor, [sample.images], [sample.problem], [answer_text])
    batch.pop("labels")
    ids = batch["input_ids"][0]  # (S,)
    texts = [processor.tokenizer.decode([int(i)]) for i in ids]
    positions = digit_positions(texts)
    with eager_text_attention(model):
        out = model(**batch, output_attentions=True)
    queries = [p - 1 for p in positions]  # the row that produced the digit
    rows = torch.stack([a[0, :, queries, :].float().mean(0) for a in out.attentions])  # (L, 2, S)
    image_pos = (ids == model.config.image_token_id).nonzero().flatten().numpy()  # (N_img,)
    return rows.numpy(), positions, image_pos


def target_index(sample: synth.Sample) -> int:
    """Index of the marker's cell among all image tokens (images in order, raster order inside each)."""
    col, row = sample.target
    return sample.image_idx * synth.GRID * synth.GRID + row * synth.GRID + col


def row_scores(rows: np.ndarray, image_pos: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
    """(L, 2, S) rows -> per-layer (L, 2) hit flags and target shares over the image tokens."""
    image_rows = rows[..., image_pos]  # (L, 2, N_img)
    image_rows = image_rows / image_rows.sum(-1, keepdims=True)
    return image_rows.argmax(-1) == target, image_rows[..., target]


def evaluate(model, processor, samples: list[synth.Sample]) -> EvalResult:
    """Accuracy and per-layer hit rate / target share over the coordinate digits of every sample."""
    model.eval()
    correct, hits, shares = 0, [], []
    for sample in samples:
        generated = generate_answer(model, processor, sample)
        match = ANSWER_RE.search(generated)
        correct += int(match is not None and match.group(0) == f"<answer>{sample.answer}</answer>")
        # teacher-force what the model wrote, up to its answer (nothing after it can hold the coordinates)
        text = generated[: match.end()] if match is not None else sample.solution
        rows, _, image_pos = producing_rows(model, processor, sample, text)
        hit, share = row_scores(rows, image_pos, target_index(sample))
        hits.append(hit)
        shares.append(share)
    hit_rate, share_mean = np.mean(hits, axis=0), np.mean(shares, axis=0)  # (L, 2): column, row digit
    layers = [
        LayerStats(i, float(h.mean()), float(s.mean()), (float(h[0]), float(h[1])), (float(s[0]), float(s[1])))
        for i, (h, s) in enumerate(zip(hit_rate, share_mean, strict=True))
    ]
    return EvalResult(n_samples=len(samples), accuracy=correct / max(1, len(samples)), layers=layers)


def untrained_like(model, seed: int = 0):
    """A model of identical config with seeded random weights: the chance baseline."""
    torch.manual_seed(seed)
    fresh = type(model)._from_config(model.config, attn_implementation="sdpa")
    return fresh.eval()
