"""A sample's video: read from a file (through imageio-ffmpeg's bundled ffmpeg) or a folder of frames, sampled
the way the Qwen video processors and qwen-vl-utils sample it, kept as the frames the model is given.

Sampling (qwen-vl-utils' rule): ``round(seconds * VIDEO_FPS)`` frames, at least MIN_FRAMES, at most MAX_FRAMES and
the frames there are, rounded down to a whole number of temporal patches (PAIR frames each; one frame is repeated),
spread evenly from the first frame to the last. A folder's frames (image files sorted by name) count as a video at
VIDEO_FPS: up to MAX_FRAMES of them are all kept. Only the sampled frames are decoded and kept in memory.

Each pair of frames ``(PAIR*k, PAIR*k + 1)`` is one temporal patch of the model: a grid of cell tokens, shown as
one panel picture (the pair's first frame, :meth:`Clip.pictures`). Model-free: numpy, Pillow, imageio-ffmpeg.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import numpy as np
from PIL import Image, UnidentifiedImageError

from attnviz.errors import AttnvizError, one_line

VIDEO_FPS = 2.0  # frames sampled per second: qwen-vl-utils' FPS and Qwen3-VL's video processor's fps
MIN_FRAMES = 4  # qwen-vl-utils' FPS_MIN_FRAMES (and the Qwen video processors' min_frames)
MAX_FRAMES = 16  # attnviz's cap: 8 temporal patches (a setting would be dataset.video_max_frames)
PAIR = 2  # frames per temporal patch (temporal_patch_size of Qwen2-VL, Qwen2.5-VL and Qwen3-VL)
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_HINT = "give a video file (MP4, WebM, AVI, ...) or a folder of PNG/JPEG frames"


@dataclass(frozen=True)
class Sampling:
    """How a video is sampled (``dataset.video_fps``, ``video_min_frames``, ``video_max_frames``)."""

    fps: float = VIDEO_FPS
    min_frames: int = MIN_FRAMES
    max_frames: int = MAX_FRAMES

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise AttnvizError(f"dataset.video_fps={self.fps}: give a rate above 0 (frames sampled per second)")
        if self.max_frames < PAIR or not 1 <= self.min_frames <= self.max_frames:
            raise AttnvizError(f"dataset.video_min_frames={self.min_frames}, video_max_frames={self.max_frames}: "
                               f"give 1 <= min <= max and max >= {PAIR} (frames go in pairs)")


@dataclass(frozen=True, eq=False)
class Clip:
    """The frames of a sample's video the model is given, and where they came from."""

    path: str  # as the sample names it
    frames: tuple[Image.Image, ...]  # (N,) RGB, all one size; N a multiple of PAIR
    indices: tuple[int, ...]  # (N,) each frame's number in the source
    source_fps: float  # the source's frame rate (a folder counts as dataset.video_fps)
    source_frames: int  # frames in the source

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames."""
        return self.frames[0].size

    @property
    def times(self) -> tuple[float, ...]:
        """(N,) each frame's time in the source, seconds."""
        return tuple(i / self.source_fps for i in self.indices)

    @property
    def n_pairs(self) -> int:
        return len(self.frames) // PAIR

    def array(self) -> np.ndarray:
        """(N, H, W, 3) uint8: the frames as the video processors take them."""
        return np.stack([np.asarray(frame, dtype=np.uint8) for frame in self.frames])

    def metadata(self) -> dict[str, Any]:
        """transformers' ``VideoMetadata`` fields: frame numbers and rate give Qwen3-VL's time stamps and Qwen2.5-VL's
        seconds per temporal patch."""
        return {"total_num_frames": self.source_frames, "fps": self.source_fps, "frames_indices": list(self.indices),
                "duration": self.source_frames / self.source_fps, "width": self.size[0], "height": self.size[1]}

    def pictures(self) -> list[Image.Image]:
        """One panel picture per temporal patch: the first frame of each pair."""
        return list(self.frames[::PAIR])


def split_inputs(items: Sequence[Any]) -> tuple[list[Image.Image], list[Clip]]:
    """A sample's inputs (images and clips, as :func:`attnviz.data.load_images` gives them) -> (images, clips)."""
    return [i for i in items if not isinstance(i, Clip)], [i for i in items if isinstance(i, Clip)]


def panel_images(items: Sequence[Any]) -> list[Image.Image]:
    """One picture per geometry entry, in prompt order: the images, then each clip's pair pictures."""
    images, clips = split_inputs(items)
    return images + [picture for clip in clips for picture in clip.pictures()]


def sample_indices(total: int, seconds: float, fps: float = VIDEO_FPS, min_frames: int = MIN_FRAMES,
                   max_frames: int = MAX_FRAMES, pair: int = PAIR) -> list[int]:
    """Frame numbers to keep of a ``total``-frame, ``seconds``-long source (see the module doc)."""
    n = min(max(round(seconds * fps), min_frames), max_frames, total)
    n = max(pair, n - n % pair)
    return np.linspace(0, total - 1, n).round().astype(int).tolist()


def read_clip(path: Path, name: str, sample_id: str, sampling: Sampling | None = None) -> Clip:
    """The sampled clip of a video file or a folder of frames; ``name``: the path as the sample wrote it."""
    where = f"sample {sample_id}: video {path}"
    sampling = sampling or Sampling()
    if path.is_dir():
        return _read_folder(path, name, where, sampling)
    if not path.is_file():
        raise AttnvizError(f"{where} does not exist; check dataset.image_dir and the sample's 'video' field")
    return _read_file(path, name, where, sampling)


def _indices(total: int, seconds: float, sampling: Sampling) -> list[int]:
    return sample_indices(total, seconds, sampling.fps, sampling.min_frames, sampling.max_frames)


def _read_folder(path: Path, name: str, where: str, sampling: Sampling) -> Clip:
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES)
    if not files:
        raise AttnvizError(f"{where} is a folder with no frames ({', '.join(FRAME_SUFFIXES)}); {VIDEO_HINT}")
    indices = _indices(len(files), len(files) / sampling.fps, sampling)
    opened = {i: _open_frame(files[i], where) for i in dict.fromkeys(indices)}
    frames = _one_size([opened[i] for i in indices])
    return Clip(name, tuple(frames), tuple(indices), sampling.fps, len(files))


def _open_frame(path: Path, where: str) -> Image.Image:
    try:
        with Image.open(path) as frame:
            return frame.convert("RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise AttnvizError(f"{where}: frame {path.name} cannot be read ({one_line(str(err))}); replace it") from None


def _one_size(frames: list[Image.Image]) -> list[Image.Image]:
    """Frames of another size than the first are resized to it (a video's frames share one size)."""
    size = frames[0].size
    return [f if f.size == size else f.resize(size, Image.BICUBIC) for f in frames]


def _read_file(path: Path, name: str, where: str, sampling: Sampling) -> Clip:
    try:
        total, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
        stream = imageio_ffmpeg.read_frames(str(path))
        meta = next(stream)
    except (RuntimeError, OSError, StopIteration, ValueError) as err:
        raise AttnvizError(f"{where} cannot be read by ffmpeg ({one_line(str(err))[:160]}); {VIDEO_HINT}") from None
    try:
        fps, size = float(meta.get("fps") or 0.0), tuple(meta["size"])
        if total < 1 or fps <= 0:
            raise AttnvizError(f"{where} holds no frames (or no frame rate) ffmpeg can decode; {VIDEO_HINT}")
        indices = _indices(total, total / fps, sampling)
        kept = _keep_frames(stream, set(indices), size)
    finally:
        stream.close()
    if not kept:
        raise AttnvizError(f"{where} holds no frames ffmpeg can decode; {VIDEO_HINT}")
    indices = [min(i, max(kept)) for i in indices]  # the count ffmpeg reports can exceed what it decodes
    return Clip(name, tuple(kept[i] for i in indices), tuple(indices), fps, total)


def _keep_frames(stream: Iterator[bytes], wanted: set[int], size: tuple[int, int]) -> dict[int, Image.Image]:
    """Decode until the last wanted frame; keep only the wanted ones (memory: the clip, not the video)."""
    kept: dict[int, Image.Image] = {}
    last = max(wanted)
    for index, data in enumerate(stream):
        if index in wanted:
            kept[index] = Image.frombytes("RGB", size, data)
        if index >= last:
            break
    return kept
