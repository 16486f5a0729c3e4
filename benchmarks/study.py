"""A benchmark-scale run three ways, side by side in one run, on the same samples of the bench model:

    python benchmarks/study.py                                              # CPU: 32 samples, bench shape
    python benchmarks/study.py --device cuda --shape 7b --batch-size 16    # one prepared command for a GPU

- a:   today's way: a multirun, one job per sample (``-m sample_idx=0,...,31``, basic launcher: every job loads
       the model, generates, then renders, one after the other);
- b:   a study, ``batch_size=1`` (one model load, rendering in worker processes);
- c:   a study, ``batch_size=--batch-size`` and render workers.

Bench model: Qwen2-VL architecture, random weights (``--shape bench``: text hidden 512, 8 layers; ``7b``:
Qwen2-VL-7B's shapes), saved as a checkpoint folder and loaded by attnviz like any other. Dataset: one small image
per sample (224 px: 64 image tokens) and a question padded to ~300 prompt tokens (lengths vary a little, as real
ones do). Every sample generates up to ``--new-tokens`` tokens (random weights rarely emit an end token) and gets a
``video=draft`` MP4. Each variant is the real command line (``python run.py ...``), so times include start-up and
model loads as a user sees them. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmark the checkout this file sits in
IMAGE_PX = 224  # 224 / 28 = 8 -> 8 x 8 = 64 image tokens
FILLER = "Find the red marker on the map, then give its cell as (column,row). "


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--shape", default="bench", choices=("bench", "7b"))
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--baseline-samples", type=int, default=None,
                        help="samples of variant a (default: all on CPU, 4 on CUDA, where each job loads 7B again)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prompt-tokens", type=int, default=300)
    parser.add_argument("--variants", default="a,b,c")
    parser.add_argument("--workdir", default=None, help="where the model, dataset and runs go (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.baseline_samples is None:
        args.baseline_samples = 4 if args.device.startswith("cuda") else args.samples
    return args


def build_checkpoint(folder: Path, shape: str, device: str, seed: int = 0) -> None:
    """The bench model with random weights (``seed``), saved with its offline processor like a real checkpoint."""
    import torch
    from capture_modes import bench_config  # beside this file (the script's folder leads sys.path)
    from transformers import Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor

    from attnviz.demo import build

    processor = build.build_processor()
    processor.image_processor = Qwen2VLImageProcessor(min_pixels=IMAGE_PX**2, max_pixels=IMAGE_PX**2)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen2VLForConditionalGeneration._from_config(bench_config(shape, processor.tokenizer), dtype=dtype)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


def build_dataset(folder: Path, n: int, prompt_tokens: int, tokenizer) -> Path:
    """n samples: each its own noise image and a question of about ``prompt_tokens`` prompt tokens."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    samples = []
    per_filler = len(tokenizer(FILLER)["input_ids"])
    for i in range(n):
        name = f"images/bench_{i:03d}.png"
        Image.fromarray(rng.integers(0, 255, (IMAGE_PX, IMAGE_PX, 3), dtype=np.uint8)).save(folder / name)
        target = prompt_tokens - 64 - 40 + int(rng.integers(-30, 31))  # minus the image and the template
        problem = FILLER * max(1, target // per_filler)
        samples.append({"id": f"bench_{i:03d}", "image": name, "problem": problem, "answer": "(3,4)"})
    path = folder / "bench.json"
    path.write_text(json.dumps(samples))
    return path


class TreeMemory:
    """Peak resident memory of a process and of it with all its descendants (render workers, ffmpeg), and the
    machine's load average meanwhile (other work on the cores slows every variant it overlaps)."""

    def __init__(self, pid: int):
        self.pid, self.peak_main, self.peak_tree, self.loads = pid, 0, 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    @staticmethod
    def _rss(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            return 0

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    with open(f"/proc/{entry.name}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry.name))
        tree, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo += children.get(pid, [])
        return tree

    def _poll(self) -> None:
        while not self._stop.wait(0.25):
            self.peak_main = max(self.peak_main, self._rss(self.pid))
            self.peak_tree = max(self.peak_tree, sum(self._rss(pid) for pid in self._tree()))
            self.loads.append(os.getloadavg()[0])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run_variant(name: str, cmd: list[str], cwd: Path) -> dict:
    """Run one command line to the end; wall time and peak memory."""
    log = cwd / f"{name}.log"
    t0 = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
        memory = TreeMemory(proc.pid)
        code = proc.wait()
        memory.stop()
    wall = time.perf_counter() - t0
    if code != 0:
        sys.exit(f"variant {name} failed (exit {code}); see {log}:\n{log.read_text()[-3000:]}")
    load = sum(memory.loads) / max(1, len(memory.loads))
    return {"wall_s": wall, "peak_rss_mb": memory.peak_main / 2**20, "peak_tree_rss_mb": memory.peak_tree / 2**20,
            "load": load}


def common(args: argparse.Namespace, model: Path, data: Path) -> list[str]:
    return [f"model.path={model}", f"dataset.json={data}", f"dataset.image_dir={data.parent}", "video=draft",
            f"generation.max_new_tokens={args.new_tokens}", "layer_idx=-1", f"device={args.device}"]


def multirun_totals(sweep: Path) -> dict:
    """Variant a: its jobs' metadata -> model loads and the time spent generating and rendering."""
    metas = [json.loads(p.read_text()) for p in sweep.glob("*/metadata.json")]
    assert all(m["status"] == "complete" for m in metas), "a job of variant a did not complete"
    timings = [m["timings"] for m in metas]
    render = sum(t.get("render_s", 0) + t.get("pictures_s", 0) for t in timings)
    generate = sum(t.get("generate_s", 0) for t in timings)
    return {"samples": len(metas), "model_loads": len(metas), "generate_s": generate, "render_s": render,
            "tokens": sum(m["n_generated"] for m in metas)}


def study_totals(job: Path) -> dict:
    data = json.loads((job / "study.json").read_text())
    assert data["status"] == "complete", f"study {job} did not complete"
    return {"samples": data["n_complete"], "model_loads": data["model_loads"], "generate_s": data["generate_s"],
            "render_s": data["render_s"], "render_workers": data["render_workers"],
            "tokens": sum(entry.get("n_generated") or 0 for entry in data["samples"])}


def run_all(args: argparse.Namespace, work: Path, model: Path, data: Path) -> dict[str, dict]:
    base = [sys.executable, str(ROOT / "run.py")]
    shared = common(args, model, data)
    results: dict[str, dict] = {}
    wanted = args.variants.split(",")
    if "a" in wanted:
        indices = ",".join(str(i) for i in range(args.baseline_samples))
        sweep = work / "a"
        res = run_variant("a", [*base, "-m", f"sample_idx={indices}", *shared, f"hydra.sweep.dir={sweep}"], work)
        results["a"] = {**res, **multirun_totals(sweep)}
    for name, batch in (("b", 1), ("c", args.batch_size)):
        if name in wanted:
            job = work / name
            res = run_variant(name, [*base, "samples=all", f"batch_size={batch}", *shared, f"output_dir={job}"], work)
            results[name] = {**res, **study_totals(job), "batch_size": batch}
    return results


LABELS = {"a": "a: multirun, one job per sample", "b": "b: study, batch_size=1", "c": "c: study, batch_size={bs}"}


def print_table(results: dict[str, dict], args: argparse.Namespace) -> None:
    head = (f"{'variant':<34} {'samples':>7} {'tokens':>6} {'wall s':>8} {'samples/s':>9} {'loads':>5} "
            f"{'generate s':>10} {'gen samples/s':>13} {'render s':>9} {'peak RSS MB':>11} {'+workers MB':>11} "
            f"{'load':>5}")
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        print(f"{LABELS[name].format(bs=args.batch_size):<34} {r['samples']:>7} {r['tokens']:>6} {r['wall_s']:>8.1f} "
              f"{r['samples'] / r['wall_s']:>9.3f} {r['model_loads']:>5} {r['generate_s']:>10.1f} "
              f"{r['samples'] / r['generate_s']:>13.3f} {r['render_s']:>9.1f} {r['peak_rss_mb']:>11.0f} "
              f"{r['peak_tree_rss_mb']:>11.0f} {r['load']:>5.1f}")
    print(f"shape {args.shape}, device {args.device}, {args.new_tokens} new tokens, ~{args.prompt_tokens}-token "
          "prompts, video=draft; render s: a: video + pictures in each job; b/c: per sample, video, pictures, metrics "
          "and metadata, summed (in a worker, or in the main process when the queue was full and at the end); "
          "load: the machine's mean 1-minute load average during the variant")


def summary(results: dict[str, dict]) -> dict:
    rate = {name: r["samples"] / r["wall_s"] for name, r in results.items()}
    gen_rate = {name: r["samples"] / r["generate_s"] for name, r in results.items()}
    out: dict = {f"{name}_samples_per_s": round(v, 4) for name, v in rate.items()}
    if {"a", "c"} <= set(results):
        out["study_speedup"] = round(rate["c"] / rate["a"], 3)
    if {"b", "c"} <= set(results):
        out["batch8_generate_speedup"] = round(gen_rate["c"] / gen_rate["b"], 3)
        out["study_b_speedup"] = round(rate["c"] / rate["b"], 3)
    if "c" in results:
        c = results["c"]
        out.update(model_loads=c["model_loads"], peak_rss_mb=round(c["peak_rss_mb"], 1),
                   peak_tree_rss_mb=round(c["peak_tree_rss_mb"], 1), batch_size=c["batch_size"],
                   render_workers=c["render_workers"])
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(f"{platform.platform()}, {os.cpu_count()} CPUs, python {platform.python_version()}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="attnviz-study-bench-", dir=args.workdir) as tmp:
        work = Path(tmp)
        model = work / "model"
        build_checkpoint(model, args.shape, args.device)
        from transformers import AutoProcessor

        tokenizer = AutoProcessor.from_pretrained(model).tokenizer
        data = build_dataset(work / "data", args.samples, args.prompt_tokens, tokenizer)
        results = run_all(args, work, model, data)
    print_table(results, args)
    print(json.dumps(summary(results)))


if __name__ == "__main__":
    main()
