"""A checkpoint comparison against the replays it is made of, side by side in one run:

    python benchmarks/compare.py                       # CPU: bench shape, 16 samples, 128-token stored answers
    python benchmarks/compare.py --device cuda --shape 7b

Two random checkpoints of the bench model (seeds 0 and 1) read the same stored answer (``pred``, ``--answer-tokens``
tokens) of every sample. Variants, each the real command line (start-up and model loads included, as a user sees
them), repeated ``--repeats`` times interleaved (medians):

- replay A, replay B: a study of each model alone, ``mode=replay`` (what the comparison is made of);
- compare: ``compare.models=[A,B]`` (one model in memory at a time), its per-sample comparisons and the report.

Targets (issue 16): compare wall time <= 1.3 x (replay A + replay B); compare's peak RSS <= one model's replay
peak + 10% (the main process, where the model lives; render workers are shown apart). The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from study import ROOT, build_checkpoint, build_dataset, run_variant  # noqa: E402  (beside this file)

WORDS = "the marker sits near the river bend so I check the grid cell by cell "


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--shape", default="bench", choices=("bench", "7b"))
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--answer-tokens", type=int, default=128)
    parser.add_argument("--prompt-tokens", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workdir", default=None, help="where the models, dataset and runs go (default: temp)")
    return parser.parse_args(argv)


def stored_answer(tokenizer, n_tokens: int) -> str:
    """A Reason-RFT-shaped answer of exactly ``n_tokens`` tokens as this tokenizer splits it."""
    tail = "</think><answer>(3,4)</answer>"
    body_ids = tokenizer("<think>" + WORDS * n_tokens, add_special_tokens=False)["input_ids"]
    room = n_tokens - len(tokenizer(tail, add_special_tokens=False)["input_ids"])
    return tokenizer.decode(body_ids[:room]) + tail


def add_answers(data: Path, tokenizer, n_tokens: int) -> None:
    samples = json.loads(data.read_text())
    answer = stored_answer(tokenizer, n_tokens)
    data.write_text(json.dumps([{**s, "pred": answer} for s in samples]))


def commands(args: argparse.Namespace, work: Path, models: list[Path], data: Path, k: int) -> dict[str, list[str]]:
    base = [sys.executable, str(ROOT / "run.py"), "samples=all", "mode=replay", "videos=none", "video=draft",
            f"dataset.json={data}", f"dataset.image_dir={data.parent}", "layer_idx=-1", f"device={args.device}",
            "capture.replay_key=pred"]
    return {
        "replay A": [*base, f"model.path={models[0]}", f"output_dir={work / f'a{k}'}"],
        "replay B": [*base, f"model.path={models[1]}", f"output_dir={work / f'b{k}'}"],
        "compare": [*base, f"model.path={models[0]}", f"compare.models=[{models[0]},{models[1]}]",
                    f"output_dir={work / f'c{k}'}"],
    }


def run_all(args: argparse.Namespace, work: Path, models: list[Path], data: Path) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {}
    for k in range(args.repeats):  # interleaved: load on the machine falls on every variant alike
        for name, cmd in commands(args, work, models, data, k).items():
            results.setdefault(name, []).append(run_variant(name.replace(" ", "_"), cmd, work))
    return results


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def print_table(results: dict[str, list[dict]], args: argparse.Namespace) -> None:
    head = f"{'variant':<10} {'wall s (each)':<24} {'median':>8} {'peak RSS MB':>11} {'+workers MB':>11} {'load':>5}"
    print(head)
    print("-" * len(head))
    for name, runs in results.items():
        each = " ".join(f"{r['wall_s']:.1f}" for r in runs)
        print(f"{name:<10} {each:<24} {median(runs, 'wall_s'):>8.1f} {median(runs, 'peak_rss_mb'):>11.0f} "
              f"{median(runs, 'peak_tree_rss_mb'):>11.0f} {median(runs, 'load'):>5.1f}")
    print(f"shape {args.shape}, device {args.device}, {args.samples} samples, {args.answer_tokens}-token stored "
          f"answers, ~{args.prompt_tokens}-token prompts, mode=replay, videos=none; medians of {args.repeats} "
          "interleaved repeats")


def summary(results: dict[str, list[dict]]) -> dict:
    replays = median(results["replay A"], "wall_s") + median(results["replay B"], "wall_s")
    one_model = max(median(results["replay A"], "peak_rss_mb"), median(results["replay B"], "peak_rss_mb"))
    return {"compare_s": round(median(results["compare"], "wall_s"), 2), "replays_s": round(replays, 2),
            "compare_over_replays": round(median(results["compare"], "wall_s") / replays, 3),
            "peak_rss_over_one_model": round(median(results["compare"], "peak_rss_mb") / one_model, 3),
            "compare_peak_rss_mb": round(median(results["compare"], "peak_rss_mb"), 1),
            "one_model_peak_rss_mb": round(one_model, 1)}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(f"{platform.platform()}, {os.cpu_count()} CPUs, python {platform.python_version()}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="attnviz-compare-bench-", dir=args.workdir) as tmp:
        work = Path(tmp)
        models = [work / "model_a", work / "model_b"]
        for seed, folder in enumerate(models):
            build_checkpoint(folder, args.shape, args.device, seed=seed)
        from transformers import AutoProcessor

        tokenizer = AutoProcessor.from_pretrained(models[0]).tokenizer
        data = build_dataset(work / "data", args.samples, args.prompt_tokens, tokenizer)
        add_answers(data, tokenizer, args.answer_tokens)
        results = run_all(args, work, models, data)
    print_table(results, args)
    print(json.dumps(summary(results)))


if __name__ == "__main__":
    main()
