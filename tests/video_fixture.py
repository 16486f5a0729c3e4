"""Small videos for the video tests: a folder of PNG frames, an MP4 written by the bundled ffmpeg, and a hand-made
trace of one image and one video whose rows look hardest at pair ``t % n_pairs`` at step ``t``."""

from __future__ import annotations

from pathlib import Path

import imageio_ffmpeg
import numpy as np
from PIL import Image

from attnviz.trace import ImageGeometry, Trace

PAIR_RGB = ((220, 40, 40), (40, 200, 60), (50, 80, 230))  # each pair's picture, one solid colour
STILL_RGB = (200, 200, 200)


def grey(i: int) -> int:
    """Frame i's grey level: distinct, far apart, survives lossy coding."""
    return 10 + 20 * i


def write_frames(folder: Path, n: int, size: tuple[int, int] = (84, 56)) -> Path:
    """``n`` PNG frames named f00.png, f01.png, ... of grey level :func:`grey`; a stray text file beside them."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", size, (grey(i),) * 3).save(folder / f"f{i:02d}.png")
    (folder / "notes.txt").write_text("not a frame")
    return folder


def write_mp4(path: Path, n: int, fps: float, size: tuple[int, int] = (96, 64)) -> Path:
    """An H.264 MP4 of ``n`` frames at ``fps``, frame i of grey level :func:`grey` (sides multiples of 16)."""
    writer = imageio_ffmpeg.write_frames(str(path), size, fps=fps, macro_block_size=16, ffmpeg_log_level="error")
    writer.send(None)
    for i in range(n):
        writer.send(np.full((size[1], size[0], 3), grey(i), np.uint8).tobytes())
    writer.close()
    return path


def video_trace(n_pairs: int = 3, grid: tuple[int, int] = (2, 3), n_steps: int = 6, seed: int = 0) -> Trace:
    """One image (2x2 cells), then a video of ``n_pairs`` temporal patches; row t puts most weight on pair
    ``t % n_pairs`` (its cell ``t % cells``)."""
    gh, gw = grid
    texts, kinds = ["<|im_start|>", "user", "\n", "<|vision_start|>"], ["special", "text", "text", "special"]
    images = [ImageGeometry(0, len(texts), 2, 2, 56, 56)]
    texts, kinds = texts + ["<|image_pad|>"] * 4 + ["<|vision_end|>"], kinds + ["image"] * 4 + ["special"]
    texts, kinds = texts + ["<|vision_start|>"], kinds + ["special"]
    for k in range(n_pairs):
        images.append(ImageGeometry(1 + k, len(texts), gh, gw, 28 * gh, 28 * gw, video=0, frames=(2 * k, 2 * k + 1),
                                    n_frames=2 * n_pairs, time_s=float(k)))
        texts, kinds = texts + ["<|video_pad|>"] * (gh * gw), kinds + ["image"] * (gh * gw)
    texts += ["<|vision_end|>", "What", " moves", "?", "<|im_end|>", "\n", "<|im_start|>", "assistant", "\n"]
    kinds += ["special", "text", "text", "text", "special", "text", "special", "text", "text"]
    prompt_len = len(texts)
    answer = [f" w{t}" for t in range(n_steps)]
    rng = np.random.default_rng(seed)
    rows = np.zeros((n_steps, prompt_len + n_steps - 1), dtype=np.float32)
    for t in range(n_steps):
        logits = rng.normal(0.0, 0.3, prompt_len + t)
        target = images[1 + t % n_pairs]
        logits[target.token_start + t % (gh * gw)] += 8.0
        rows[t, : prompt_len + t] = np.exp(logits) / np.exp(logits).sum()
    return Trace(token_ids=list(range(prompt_len + n_steps)), token_texts=texts + answer,
                 token_kinds=kinds + ["text"] * n_steps, prompt_len=prompt_len, images=images, rows={0: rows})


def video_pictures(trace: Trace) -> list[Image.Image]:
    """One solid picture per geometry entry: the image grey, pair k in PAIR_RGB[k]."""
    return [Image.new("RGB", (g.pixel_w, g.pixel_h), PAIR_RGB[g.index - 1] if g.is_video else STILL_RGB)
            for g in trace.images]
