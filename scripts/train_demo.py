"""Train the demo model from scratch (deterministic: fixed seed, fixed step count) and save it to demo/model/.

    python scripts/train_demo.py                            # 1000 steps of 16 samples, writes demo/model/
    python scripts/train_demo.py --steps 50 --out /tmp/m    # smoke run

Task: find the red marker on a synthetic map and answer its 28-px cell as (column,row), or as
"image k (column,row)" when two maps are shown (see attnviz.demo.synth). The loss covers the assistant's answer
tokens. From scratch the model sat at chance (ln 8 per digit) until three things were in place:
a curriculum (big discs on bare, uniformly shaded paper first), per-cell shading of the map (the answer can be
read off the marker's own token), and keeping the fixed <think> text out of the loss for the first 25% of
steps (learning it first taught the model to ignore the image).

Besides the answer, one layer (--look-layer, the demo's default layer_idx) is taught where to look: a second loss
is -log of the marker cell's share of the image attention in that layer's head-averaged rows that produce the two
coordinates. Without it the model spread the reading over layers (column at one, row at another) and, with two
maps, read the marker back from other image tokens; the demo is the tool's known-answer check, so its attention
has to be somewhere we know. scripts/eval_demo.py measures how well it holds on fresh images, at every layer.
Runs with the same seed and --threads give identical weights (another thread count changes the numerics).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from transformers import Qwen2VLForConditionalGeneration

from attnviz.demo import build, evaluate, synth

log = logging.getLogger("train_demo")
TRAIN_SEED = 1234


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("demo/model"))
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=TRAIN_SEED)
    parser.add_argument("--two-image-share", type=float, default=0.35, help="share of 2-image batches after 15%%")
    parser.add_argument("--threads", type=int, default=1, help="1: steady even when the cores are shared")
    parser.add_argument("--look-layer", type=int, default=3, help="layer whose attention is taught to find the marker")
    parser.add_argument("--look-weight", type=float, default=1.0, help="weight of that attention loss (0: off)")
    return parser.parse_args()


def lr_factor(step: int, steps: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def batch_for_step(step: int, steps: int, batch: int, seed: int, two_share: float) -> list[synth.Sample]:
    """The samples of one step, a pure function of (seed, step): reruns and resumes see the same data.

    A batch is all 1-image or all 2-image (same layout, no padding). 2-image batches start once the
    curriculum leaves the easy phase, so the model first learns to find red and read positions on one map.
    """
    rng = np.random.default_rng([seed, step])
    progress = step / steps
    level = synth.curriculum(progress)
    n_images = 2 if progress >= 0.15 and rng.random() < two_share else 1
    return [synth.make_sample(rng, level, n_images) for _ in range(batch)]


def new_model(processor, seed: int) -> Qwen2VLForConditionalGeneration:
    """Seeded random initialisation (also the untrained baseline of the evaluation)."""
    torch.manual_seed(seed)
    config = build.build_config(processor.tokenizer)
    # eager: training reads one layer's attention weights (the tool itself never runs eager)
    return Qwen2VLForConditionalGeneration._from_config(config, attn_implementation="eager")


def text_weight(progress: float) -> float:
    """Loss weight of the answer's fixed text (the digits always weigh 1): 0 until 25%, ramped to 1 by 35%.

    Why: the fixed <think> text is learnt first and fastest by ignoring the image altogether, which starved the
    image pathway: the digits then stayed at chance (ln 8) for hundreds of steps. Once the digits are read off
    the image, the fixed text is learnt in a few dozen steps without undoing that.
    """
    return min(max((progress - 0.25) / 0.10, 0.0), 1.0)


def answer_loss(logits: torch.Tensor, labels: torch.Tensor, digit_ids: torch.Tensor, text_w: float):
    """Weighted cross-entropy over the answer tokens -> (loss, digit accuracy)."""
    logits, target = logits[:, :-1].float(), labels[:, 1:]  # (B, S-1, V), (B, S-1): token t predicts t+1
    ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target.clamp(min=0), reduction="none")
    is_digit = torch.isin(target, digit_ids)  # (B, S-1) coordinates and the image number
    weights = is_digit.float() + text_w * ((target >= 0) & ~is_digit).float()
    accuracy = (logits.argmax(-1) == target)[is_digit].float().mean()
    return (ce * weights).sum() / weights.sum(), accuracy.item()


def look_loss(attention: torch.Tensor, ids: torch.Tensor, labels: torch.Tensor, digit_ids, targets, image_id):
    """-log of the marker cell's share of image attention, in the head-averaged rows that produce the digits.

    attention (B, H, S, S) of the taught layer; targets (B,) index of the marker's cell among the image tokens.
    Why: without it the tiny model splits the reading over layers (column digit at one, row digit at another)
    and carries the marker through other image tokens when two maps are shown; the demo is the tool's
    known-answer check, so one layer is taught to look at the marker, and evaluation measures how well it does.
    """
    image_pos = (ids[0] == image_id).nonzero().flatten()  # (N_img,) same layout across the batch
    is_digit = torch.isin(labels[:, 1:], digit_ids)  # (B, S-1): query t produces token t+1
    # only the coordinates (the last two digits): "which image" may be read elsewhere
    is_digit &= is_digit.flip(1).cumsum(1).flip(1) <= 2
    batch_idx, query = is_digit.nonzero(as_tuple=True)  # (D,) each; only these rows (earlier rows see no image)
    rows = attention[batch_idx, :, query].float().mean(1)[:, image_pos]  # (D, N_img) head-averaged
    share = rows[torch.arange(len(query)), targets[batch_idx]] / rows.sum(-1)  # (D,)
    return -torch.log(share + 1e-6).mean()


def train(model, processor, args: argparse.Namespace) -> None:
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    warmup = max(1, args.steps // 20)
    digit_ids = torch.tensor(processor.tokenizer.convert_tokens_to_ids([str(d) for d in range(10)]))
    model.train()
    start, running = time.time(), []
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = args.lr * lr_factor(step, args.steps, warmup)
        samples = batch_for_step(step, args.steps, args.batch, args.seed, args.two_image_share)
        inputs = build.encode(
            processor, [s.images for s in samples], [s.problem for s in samples], [s.solution for s in samples]
        )
        labels = inputs.pop("labels")
        text_w = text_weight(step / args.steps)
        out = model(**inputs, output_attentions=args.look_weight > 0)
        loss, accuracy = answer_loss(out.logits, labels, digit_ids, text_w)
        if args.look_weight > 0:
            targets = torch.tensor([evaluate.target_index(s) for s in samples])
            image_id = model.config.image_token_id
            att = look_loss(out.attentions[args.look_layer], inputs["input_ids"], labels, digit_ids, targets, image_id)
            loss = loss + args.look_weight * att
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running.append((loss.item(), accuracy))
        if (step + 1) % 25 == 0 or step + 1 == args.steps:
            loss_mean, acc_mean = np.mean(running, axis=0)
            log.info(
                "step %d/%d loss %.4f digit acc %.3f lr %.2e images %d  %.1fs",
                *(step + 1, args.steps, loss_mean, acc_mean, opt.param_groups[0]["lr"]),
                *(len(samples[0].images), time.time() - start),
            )
            running = []
    model.set_attn_implementation("sdpa")  # what the saved model runs with
    model.eval()


@torch.no_grad()
def generate(model, processor, samples: list[synth.Sample]) -> list[str]:
    """Greedy answers, one sample at a time (the way the tool runs)."""
    texts = []
    for s in samples:
        inputs = build.encode(processor, [s.images], [s.problem], None)
        out = model.generate(**inputs, max_new_tokens=40, do_sample=False)
        texts.append(processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :]))
    return texts


def save_and_verify(model, processor, out: Path) -> None:
    """save_pretrained both, reload through the Auto classes offline, and check generation reproduces."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model.generation_config.do_sample = False
    model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.save_pretrained(out)
    processor.save_pretrained(out)
    os.environ["HF_HUB_OFFLINE"] = "1"
    reloaded_proc = AutoProcessor.from_pretrained(out)
    reloaded = AutoModelForImageTextToText.from_pretrained(out).eval()
    samples = synth.make_samples(seed=99, count=4) + synth.make_samples(seed=98, count=2, n_images=2)
    before, after = generate(model, processor, samples), generate(reloaded, reloaded_proc, samples)
    for s, a, b in zip(samples, before, after, strict=True):
        log.info("target %s  generated %s", s.answer, b)
        if a != b:
            raise RuntimeError(f"reloaded model generates differently: {a!r} vs {b!r}")
    log.info("saved to %s and verified reload (%d samples)", out, len(samples))


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    processor = build.build_processor()
    model = new_model(processor, args.seed)
    log.info("parameters: %d", sum(p.numel() for p in model.parameters()))
    start, cpu_start = time.time(), time.process_time()
    train(model, processor, args)
    # CPU time shows the cost when other jobs share the cores (wall time then overstates it)
    log.info("training wall time %.1fs, CPU time %.1fs", time.time() - start, time.process_time() - cpu_start)
    args.out.mkdir(parents=True, exist_ok=True)
    save_and_verify(model, processor, args.out)


if __name__ == "__main__":
    main()
