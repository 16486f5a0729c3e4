"""Render speed and memory: attnviz's renderer against a naive full-redraw renderer, same trace, same size.

    python benchmarks/render.py                      # 1920x1080, 300- and 2000-token answers
    python benchmarks/render.py --width 1280 --height 720 --steps 100 400

The naive renderer below is the predecessor's method: a fresh canvas per frame, every token measured, wrapped
and drawn again, the image and a per-cell tint overlay composed again, every frame kept in a list, all encoded
at the end (with the same encoder settings as attnviz). Each configuration runs in its own subprocess, so its
peak RSS (``ru_maxrss``) is its own; ffmpeg's memory is not counted for either. At 2000 frames the naive
renderer would keep ~12 GB of 1080p frames, so it draws every 10th frame of that trace (each frame still
redraws everything up to its step) and its peak RSS is extrapolated from the measured memory per kept frame.

Prints a table, then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from attnviz.config import RenderConfig, VideoConfig  # noqa: E402
from attnviz.render import find_font, find_text_start, render_frames  # noqa: E402
from attnviz.render.colors import colormap_lut, normalise  # noqa: E402
from attnviz.trace import ImageGeometry, Trace  # noqa: E402
from attnviz.video import write_video  # noqa: E402

LAYER = 0
GRID = (9, 11)  # a 320x240 picture in Qwen2-VL: 252x308 pixels -> 9x11 merged cells, 99 tokens
WORDS = [" the", " red", " marker", " sits", " near", " road", " cell", " left", " of", " crossing", ",", ".",
         " I", " look", " at", " map", " north", " east", " grid", "\n"]
NAIVE_STRIDE_LONG = 10  # naive renderer on long traces: every 10th frame (else ~6 MB x 2000 frames kept)


class SyntheticTrace(Trace):
    """Rows made on demand from a seeded generator: the trace costs no memory that grows with its length."""

    def row(self, layer: int, step: int) -> np.ndarray:
        k = self.prompt_len + step
        w = np.random.default_rng(step).random(k, dtype=np.float32) ** 8  # peaky, like real attention
        w[0] = 4.0  # a sink on the first token
        return w / w.sum()


def make_trace(steps: int) -> Trace:
    """Chat prompt with two images and a question, then a ``steps``-token answer with newlines and tags."""
    rng = np.random.default_rng(0)
    texts = ["<|im_start|>", "system", "\n", "You", " are", " a", " helpful", " assistant", ".", "<|im_end|>", "\n",
             "<|im_start|>", "user", "\n"]
    kinds = ["special"] + ["text"] * 8 + ["special", "text", "special", "text", "text"]
    images = []
    for i in range(2):
        images.append(ImageGeometry(i, len(texts) + 1, GRID[0], GRID[1], GRID[0] * 28, GRID[1] * 28))
        texts += ["<|vision_start|>"] + ["<|image_pad|>"] * (GRID[0] * GRID[1]) + ["<|vision_end|>"]
        kinds += ["special"] + ["image"] * (GRID[0] * GRID[1]) + ["special"]
    question = " Based on the following requirements, find the red marker and trace the road it is on." * 2
    texts += [" " + w for w in question.split()] + ["<|im_end|>", "\n", "<|im_start|>", "assistant", "\n"]
    kinds += ["text"] * len(question.split()) + ["special", "text", "special", "text", "text"]
    prompt_len = len(texts)
    body = [WORDS[i] for i in rng.integers(0, len(WORDS), max(0, steps - 12))]
    answer = (["<think>"] + body + ["</think>", "<answer>", "(", "4", "1", "2", ",", "6", "0", "3", ")", "</answer>"])
    texts += answer[:steps]
    kinds += ["text"] * min(steps, len(answer))
    rows = {LAYER: np.zeros((0, 0), dtype=np.float32)}  # only the layer list is read from it
    return SyntheticTrace(list(range(len(texts))), texts, kinds, prompt_len, images, rows)


def make_images() -> list[Image.Image]:
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)) for _ in range(2)]


def run_attnviz(steps: int, video: VideoConfig, out: Path, encode: bool) -> dict:
    trace, images = make_trace(steps), make_images()
    start, _ = find_text_start(trace, "Based on the following requirements")
    t0 = time.perf_counter()
    frames = render_frames(trace, LAYER, images, RenderConfig(), video, sample_id="bench", text_start=start,
                           ground_truth="(500,500)", reuse_buffer=True)
    if encode:
        write_video(frames, out, video, total=steps)
    else:
        for _ in frames:
            pass
    seconds = time.perf_counter() - t0
    return {"frames": steps, "seconds": seconds, "render_seconds": None if encode else seconds}


def naive_frame(trace: Trace, step: int, images, width: int, height: int, fonts, lut) -> np.ndarray:
    """The predecessor's way: everything drawn from scratch on a fresh canvas."""
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    row = trace.row(LAYER, step)
    start, _ = find_text_start(trace, "Based on the following requirements")
    current = trace.prompt_len + step
    shown = [p for p in range(start, current + 1) if trace.token_kinds[p] != "image"]
    weights = normalise(row[shown[:-1]], "step", gamma=0.4)
    x, y, half, lh = 10, 60, width // 2, fonts.line_height
    draw.text((10, 10), f"layer {LAYER} step {step + 1}/{trace.n_steps}", fill=(0, 0, 0), font=fonts.primary)
    for i, p in enumerate(shown):
        for k, part in enumerate(trace.token_texts[p].split("\n")):
            if k:
                x, y = 10, y + lh
            w = draw.textbbox((0, 0), part, font=fonts.primary)[2]
            if x + w > half - 10:
                x, y = 10, y + lh
            color = (0, 0, 255) if p == current else tuple(int(c) for c in lut[int(weights[i] * 255)])
            draw.text((x, y), part, fill=color, font=fonts.primary)
            x += w
    _naive_images(canvas, row, trace.images, images, half, lut)
    return np.array(canvas)


def _naive_images(canvas: Image.Image, row, geoms, images, half: int, lut) -> None:
    positions = np.concatenate([np.asarray(g.positions) for g in geoms])
    joint = np.zeros(len(row), dtype=np.float32)
    joint[positions] = normalise(row[positions], "step", gamma=0.4)
    box_h = (canvas.height - 80) // len(geoms)
    for i, (g, im) in enumerate(zip(geoms, images, strict=True)):
        scale = min((canvas.width - half - 20) / im.width, (box_h - 10) / im.height)
        shown = im.resize((int(im.width * scale), int(im.height * scale))).convert("RGBA")
        overlay = Image.new("RGBA", shown.size, (0, 0, 0, 0))
        od = ImageDraw.Draw(overlay)
        cw, ch = shown.width // g.grid_w, shown.height // g.grid_h  # integer cells, as the predecessor did
        for (r, c), w in np.ndenumerate(g.cell_weights(joint)):
            od.rectangle([c * cw, r * ch, (c + 1) * cw, (r + 1) * ch], fill=(*lut[int(w * 255)], 115),
                         outline=(255, 255, 255, 90))
        canvas.paste(Image.alpha_composite(shown, overlay).convert("RGB"), (half + 10, 70 + i * box_h))


def run_naive(steps: int, video: VideoConfig, out: Path, stride: int) -> dict:
    trace, images = make_trace(steps), make_images()
    fonts, lut = find_font(None, 22), colormap_lut("red_green")
    t0 = time.perf_counter()
    kept = []
    before = rss_mb()
    for t in range(0, steps, stride):
        kept.append(naive_frame(trace, t, images, video.width, video.height, fonts, lut))
    per_frame = (rss_mb() - before) / max(1, len(kept))
    drawn = time.perf_counter() - t0
    write_video(iter(kept), out, video, total=len(kept))
    return {"frames": len(kept), "seconds": time.perf_counter() - t0, "render_seconds": drawn,
            "rss_mb_per_kept_frame": per_frame}


def cpu_s(usage) -> float:
    return usage.ru_utime + usage.ru_stime


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def worker(args) -> None:
    video = VideoConfig(width=args.width, height=args.height)
    start = resource.getrusage(resource.RUSAGE_SELF)  # imports done: count only what the run costs
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.mp4"
        if args.worker == "naive":
            result = run_naive(args.steps[0], video, out, args.stride)
        else:
            result = run_attnviz(args.steps[0], video, out, encode=args.worker == "attnviz")
    self_cpu = resource.getrusage(resource.RUSAGE_SELF)
    ffmpeg_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)  # ffmpeg has exited and been waited for
    result.update(
        fps=result["frames"] / result["seconds"],
        peak_rss_mb=rss_mb(),
        cpu_ms_per_frame=1000 * (cpu_s(self_cpu) - cpu_s(start)) / result["frames"],
        ffmpeg_cpu_ms_per_frame=1000 * cpu_s(ffmpeg_cpu) / result["frames"],
    )
    print(json.dumps(result))


def spawn(kind: str, steps: int, args, stride: int = 1) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--steps", str(steps), "--stride", str(stride),
           "--width", str(args.width), "--height", str(args.height)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def two_core_fps(r: dict, pipelined: bool) -> float:
    """Frames/s on 2 otherwise idle cores, from the CPU time measured: attnviz renders while ffmpeg encodes
    (ffmpeg's threads share both cores); the naive renderer draws everything first, then encodes."""
    draw, encode = r["cpu_ms_per_frame"], r["ffmpeg_cpu_ms_per_frame"]
    per_frame = max(draw, (draw + encode) / 2) if pipelined else draw + encode / 2
    return 1000 / per_frame


def measure(args) -> dict:
    short, long = args.steps
    runs = {
        "attnviz": {n: spawn("attnviz", n, args) for n in (short, long)},
        "attnviz render only": {short: spawn("attnviz-render", short, args)},
        "naive": {short: spawn("naive", short, args)},
    }
    naive_long = spawn("naive", long, args, NAIVE_STRIDE_LONG)
    naive_long["peak_rss_mb"] += naive_long["rss_mb_per_kept_frame"] * (long - naive_long["frames"])  # all kept
    runs["naive"][long] = naive_long
    for name, by_steps in runs.items():
        for r in by_steps.values():
            r["fps_2_idle_cores"] = two_core_fps(r, pipelined=name != "naive")
    return runs


def print_table(runs: dict, args, load: tuple) -> None:
    print(f"{args.width}x{args.height}; one process per row; ffmpeg (libx264 ultrafast) in its own process; "
          f"load average {load[0]:.1f} before, {load[1]:.1f} after (2 cores)")
    print(f"{'renderer':<20}{'tokens':>7}{'frames':>7}{'frames/s':>9}{'draw ms':>9}{'ffmpeg ms':>10}"
          f"{'fps 2 idle cores':>17}{'peak RSS MB':>12}")
    for name, by_steps in runs.items():
        for steps, r in by_steps.items():
            note = "  every 10th frame; RSS extrapolated" if name == "naive" and steps == max(args.steps) else ""
            print(f"{name:<20}{steps:>7}{r['frames']:>7}{r['fps']:>9.1f}{r['cpu_ms_per_frame']:>9.1f}"
                  f"{r['ffmpeg_cpu_ms_per_frame']:>10.1f}{r['fps_2_idle_cores']:>17.1f}{r['peak_rss_mb']:>12.0f}{note}")
    print("frames/s: measured wall clock; draw / ffmpeg ms: CPU time per frame of the renderer / encoder process; "
          "fps 2 idle cores: derived from those CPU times")


def main(args) -> None:
    short, long = args.steps
    load0 = os.getloadavg()[0]
    runs = measure(args)
    print_table(runs, args, (load0, os.getloadavg()[0]))
    a, n = runs["attnviz"], runs["naive"]
    only = runs["attnviz render only"][short]
    summary = {
        "width": args.width,
        "height": args.height,
        "speedup": a[short]["fps"] / n[short]["fps"],
        f"speedup_{long}": a[long]["fps"] / n[long]["fps"],
        "speedup_2_idle_cores": a[short]["fps_2_idle_cores"] / n[short]["fps_2_idle_cores"],
        "speedup_render_only": only["fps"] / (n[short]["frames"] / n[short]["render_seconds"]),
        "fps_1080p" if (args.width, args.height) == (1920, 1080) else "fps": a[short]["fps"],
        "fps_2_idle_cores": a[short]["fps_2_idle_cores"],
        f"fps_{long}": a[long]["fps"],
        "render_only_fps": only["fps"],
        "naive_fps": n[short]["fps"],
        f"peak_rss_mb_{short}": a[short]["peak_rss_mb"],
        f"peak_rss_mb_{long}": a[long]["peak_rss_mb"],
        "rss_growth": a[long]["peak_rss_mb"] / a[short]["peak_rss_mb"] - 1,
        f"naive_peak_rss_mb_{short}": n[short]["peak_rss_mb"],
        f"naive_peak_rss_mb_{long}_extrapolated": n[long]["peak_rss_mb"],
        "load_average": [round(load0, 2), round(os.getloadavg()[0], 2)],
    }
    print(f"speedup {summary['speedup']:.1f}x at {short} tokens, {summary[f'speedup_{long}']:.1f}x at {long}; "
          f"RSS at {long} frames is {100 * summary['rss_growth']:+.1f}% of that at {short}")
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in summary.items()}))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--steps", type=int, nargs="+", default=[300, 2000], metavar="N", help="short and long")
    parser.add_argument("--worker", choices=["attnviz", "attnviz-render", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--stride", type=int, default=1, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    cli = parse_args()
    if cli.worker:
        cli.steps = cli.steps[:1]
        worker(cli)
    else:
        main(cli)
