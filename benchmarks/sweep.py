"""Wall time of a 3-layer sweep against a 1-layer sweep over the same demo samples, measured in one run.

    python benchmarks/sweep.py [--samples 0,1] [--repeats 3] [--video 1920x1080]

Each variant is the real command line (`python run.py -m ...`, basic launcher, one process), so the times
include Python start-up and model load, as a user sees them:

- one:      layer_idx=3            sample_idx=<samples>   (the 1-layer reference)
- sweep3:   layer_idx=1,2,3        sample_idx=<samples>   (jobs share one generation per sample)
- unshared: layer_idx=1,2,3        sample_idx=<samples>   reuse_traces=false (one generation per job)

Target: sweep3 / one <= 1.5. generate_calls are counted from the runs' metadata (summary.json).
The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "one": ["layer_idx=3"],
    "sweep3": ["layer_idx=1,2,3"],
    "unshared": ["layer_idx=1,2,3", "reuse_traces=false"],
}


def run_sweep(overrides: list[str], sweep_dir: Path) -> tuple[float, dict]:
    cmd = [sys.executable, str(ROOT / "run.py"), "-m", *overrides, f"hydra.sweep.dir={sweep_dir}"]
    t0 = time.perf_counter()
    result = subprocess.run(cmd, cwd=sweep_dir.parent, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if result.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}")
    return wall, json.loads((sweep_dir / "summary.json").read_text())


def stage_totals(summary: dict) -> dict[str, float]:
    """Sum of each timed stage over the sweep's jobs (load, generate, render)."""
    totals: dict[str, float] = {}
    for job in summary["jobs"]:
        for stage, seconds in (job.get("timings") or {}).items():
            totals[stage] = round(totals.get(stage, 0.0) + seconds, 2)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", default="0,1", help="sample_idx values swept in every variant")
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant, interleaved (median wall time)")
    parser.add_argument("--video", default="1920x1080", help="video size WxH")
    args = parser.parse_args()
    width, height = args.video.split("x")
    common = [f"sample_idx={args.samples}", f"video.width={width}", f"video.height={height}"]
    walls: dict[str, list[float]] = {name: [] for name in VARIANTS}
    last: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="attnviz-bench-") as tmp:
        for repeat in range(args.repeats):
            for name, overrides in VARIANTS.items():  # interleaved: drifting machine load hits every variant
                wall, summary = run_sweep([*overrides, *common], Path(tmp) / f"{name}-{repeat}")
                walls[name].append(wall)
                last[name] = summary
                print(f"{name:9s} {wall:7.1f} s  jobs {summary['n_jobs']}  generate_calls "
                      f"{summary['generate_calls']}  stages {stage_totals(summary)}", flush=True)
    median = {name: statistics.median(values) for name, values in walls.items()}
    result = {
        "samples": args.samples,
        "video": args.video,
        "repeats": args.repeats,
        "one_s": round(median["one"], 2),
        "sweep3_s": round(median["sweep3"], 2),
        "unshared_s": round(median["unshared"], 2),
        "sweep3_over_1": round(median["sweep3"] / median["one"], 3),
        "unshared_over_1": round(median["unshared"] / median["one"], 3),
        "generate_calls": last["sweep3"]["generate_calls"],
        "generate_calls_unshared": last["unshared"]["generate_calls"],
        "target_sweep3_over_1": 1.5,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
