"""Capture cost side by side: plain SDPA generation vs eager output_attentions vs attnviz (1 layer, all) vs replay.

``capture_all_metrics`` is what a run with grounding metrics does (metrics.layers=all): capture every layer, compute
every metric of every layer from the rows on disk, then keep one layer's rows.

    python benchmarks/capture.py                 # CPU, bench model: Qwen2-VL shape, random weights, fp32
    python benchmarks/capture.py --device cuda --shape 7b --new-tokens 1024 --replay-tokens 256

Each mode runs in its own process (fresh allocator, its own peak memory), started once; the driver then runs the
modes round-robin so that load from other work falls on all alike. The first round is a warm-up whose peak memory
is reported; then ``--repeats`` timed rounds, whose medians and ratios to plain generation the table shows. The
answer is forced to exactly ``--new-tokens`` tokens (EOS suppressed). Replay teacher-forces the tokens plain greedy
generation wrote; ``replay_speedup`` compares attnviz generating ``--replay-tokens`` tokens (all layers) with
replaying them. On CUDA the model is bf16 and the kernel FlashAttention-2 when flash-attn is installed.
The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmark the checkout this file sits in

MODES = ("plain", "eager", "capture_one", "capture_all", "capture_all_metrics", "replay")
LABELS = {
    "plain": "plain generate (no capture)",
    "eager": "eager + output_attentions, all layers",
    "capture_one": "attnviz, 1 layer",
    "capture_all": "attnviz, all layers",
    "capture_all_metrics": "attnviz, all layers + metrics, keep 1",
    "replay": "attnviz replay, all layers",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--shape", default="bench", choices=("bench", "7b"))
    parser.add_argument("--dtype", default=None, help="float32 (CPU default) or bfloat16 (CUDA default)")
    parser.add_argument("--kernel", default=None, help="sdpa, or flash_attention_2 (CUDA default when installed)")
    parser.add_argument("--prompt-tokens", type=int, default=1300)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--replay-tokens", type=int, default=256, help="0 skips the replay_speedup pair")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per mode after the memory run (0: none)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cuda = args.device.startswith("cuda")
    args.dtype = args.dtype or ("bfloat16" if cuda else "float32")
    has_flash = importlib.util.find_spec("flash_attn") is not None
    args.kernel = args.kernel or ("flash_attention_2" if cuda and has_flash else "sdpa")
    args.vision_kernel = "flash_attention_2" if args.kernel == "flash_attention_2" else "sdpa"
    return args


class Worker:
    """One mode's process: built once, then asked for one run at a time."""

    def __init__(self, mode: str, argv: list[str], new_tokens: int):
        self.mode, self.new_tokens, self.runs = mode, new_tokens, []
        cmd = [sys.executable, __file__, *argv, "--worker", mode, "--new-tokens", str(new_tokens)]
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.prompt_len = self._read()["prompt_len"]

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            sys.exit(f"mode {self.mode}: worker exited (code {self.proc.wait()}); see its stderr above")
        return json.loads(line)

    def run(self) -> dict:
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        self.runs.append(self._read())
        return self.runs[-1]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()

    def result(self) -> dict:
        """First run: memory (fresh process); the others: time (median). With ``--repeats 0`` (a memory check of a
        long answer) the first run's time stands in."""
        first, timed = self.runs[0], self.runs[1:] or self.runs[:1]
        return {"mode": self.mode, "new_tokens": self.new_tokens, "prompt_len": self.prompt_len,
                "times_s": [r["time_s"] for r in timed], "median_s": median(r["time_s"] for r in timed),
                "extra_rss_mb": first["extra_rss_mb"], "cuda_extra_mb": first["cuda_extra_mb"],
                "kept_bytes": first["kept_bytes"], "own_share": _median_or_none([r["own_share"] for r in timed])}


def _median_or_none(values: list) -> float | None:
    return None if None in values else median(values)


def measure(modes: list[str], argv: list[str], new_tokens: int, repeats: int) -> dict[str, dict]:
    """Start every mode's process, then run the modes round-robin: 1 memory run + ``repeats`` timed runs each."""
    workers = [Worker(mode, argv, new_tokens) for mode in modes]
    try:
        for round_idx in range(repeats + 1):
            for worker in workers:
                took = worker.run()["time_s"]
                print(f"  round {round_idx} {worker.mode:<12} {new_tokens:>5} tokens: {took:.3f} s",
                      file=sys.stderr, flush=True)
    finally:
        for worker in workers:
            worker.close()
    return {worker.mode: worker.result() for worker in workers}


def summary(results: dict[str, dict], long: dict[str, dict]) -> dict:
    plain = results["plain"]
    out: dict = {}
    for mode, res in results.items():
        out[f"{mode}_ratio"] = res["median_s"] / plain["median_s"]
        out[f"{mode}_extra_rss_mb"] = res["extra_rss_mb"] - plain["extra_rss_mb"]
        out[f"{mode}_kept_bytes"] = res["kept_bytes"]
        if mode.startswith(("capture", "replay")) and res["own_share"] is not None:
            out[f"{mode}_own_share"] = res["own_share"]  # capture code's share of the run's time
        if res["cuda_extra_mb"] is not None:
            out[f"{mode}_cuda_extra_mb"] = res["cuda_extra_mb"] - plain["cuda_extra_mb"]
    if "capture_all" in results and "replay" in results:
        out["replay_speedup_at_new_tokens"] = results["capture_all"]["median_s"] / results["replay"]["median_s"]
    if long:
        out["replay_speedup"] = long["capture_all"]["median_s"] / long["replay"]["median_s"]
        out["replay_speedup_tokens"] = long["replay"]["new_tokens"]
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def print_table(results: dict[str, dict], long: dict[str, dict], args: argparse.Namespace) -> None:
    plain = results["plain"]
    head = (f"{'mode':<40} {'tokens':>6} {'median s':>9} {'x plain':>8} {'own %':>6} {'peak RSS +MB':>13} "
            f"{'vs plain MB':>12} {'kept MB':>9}")
    print(head)
    print("-" * len(head))
    for res in [*results.values(), *long.values()]:
        ratio = res["median_s"] / plain["median_s"] if res["new_tokens"] == plain["new_tokens"] else float("nan")
        own = f"{100 * res['own_share']:.1f}" if res["own_share"] is not None and res["mode"] != "plain" else "-"
        print(f"{LABELS[res['mode']]:<40} {res['new_tokens']:>6} {res['median_s']:>9.3f} {ratio:>8.3f} {own:>6} "
              f"{res['extra_rss_mb']:>13.1f} {res['extra_rss_mb'] - plain['extra_rss_mb']:>12.1f} "
              f"{res['kept_bytes'] / 2**20:>9.2f}")
    print(f"prompt {plain['prompt_len']} tokens; shape {args.shape}, {args.dtype}, kernel {args.kernel}, "
          f"device {args.device}, {args.threads} threads, {args.repeats} timed repeats per mode; "
          "own %: time inside attnviz's capture code, measured within the same runs (CPU only)")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker:
        from capture_modes import main_worker  # beside this file (the script's folder leads sys.path)

        main_worker(args.worker, args)
        return
    forwarded = _drop_value(argv, "--new-tokens")
    modes = [m for m in args.modes.split(",") if m]
    print(f"{platform.platform()}, {os.cpu_count()} CPUs, python {platform.python_version()}", file=sys.stderr)
    results = measure(modes, forwarded, args.new_tokens, args.repeats)
    long = {}
    if args.replay_tokens and {"capture_all", "replay"} <= set(modes):
        long = measure(["capture_all", "replay"], forwarded, args.replay_tokens, args.repeats)
    print_table(results, long, args)
    print(json.dumps(summary(results, long)))


def _drop_value(argv: list[str], flag: str) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == flag:
            skip = True
        elif not arg.startswith(f"{flag}="):
            out.append(arg)
    return out


if __name__ == "__main__":
    main()
