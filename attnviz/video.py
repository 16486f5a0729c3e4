"""Stream frames to an MP4 through the ffmpeg that imageio-ffmpeg bundles.

``video.codec=auto`` encodes with NVIDIA's ``h264_nvenc`` when a CUDA device is present and the encoder opens
(probed once per process: a few tiny frames), else with ``libx264``. Frames are piped to ffmpeg as they are
produced (never collected). The file is written under a hidden temporary
name in the target folder and renamed only after ffmpeg exited with status 0, so a crash, an interrupt or a
failing frame source never leaves a truncated video under the final name.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from tqdm import tqdm

from attnviz.errors import EncodeError, one_line
from attnviz.schema import VideoConfig

log = logging.getLogger(__name__)

STDERR_TAIL = 2000  # characters of ffmpeg's own message kept in an error
AUTO, NVENC, FALLBACK = "auto", "h264_nvenc", "libx264"
PROBE_SIZE, PROBE_FRAMES = (256, 144), 4  # NVENC's smallest frame is larger than a thumbnail: 256x144 is safe
# x264 speed presets -> NVENC's p1 (fastest) .. p7 (slowest)
NVENC_PRESETS = {"ultrafast": "p1", "superfast": "p1", "veryfast": "p2", "faster": "p3", "fast": "p3",
                 "medium": "p4", "slow": "p5", "slower": "p6", "veryslow": "p7"}


def cuda_present() -> bool:
    """Is a CUDA device visible? Without importing torch (renderers are model-free): torch's answer when it is
    imported already, else whether the NVIDIA driver lists a GPU."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return False
    torch = sys.modules.get("torch")
    if torch is not None:
        return bool(torch.cuda.is_available())
    gpus = Path("/proc/driver/nvidia/gpus")
    return (gpus.is_dir() and any(gpus.iterdir())) or Path("/dev/nvidia0").exists()


@functools.cache
def encoder_opens(codec: str) -> bool:
    """Encode PROBE_FRAMES black frames with ``codec`` into ffmpeg's null muxer: True when that works."""
    width, height = PROBE_SIZE
    source = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", "4", "-i", "-"]
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", *source, *encode_args(VideoConfig(codec=codec)),
           "-f", "null", "-"]
    try:
        done = subprocess.run(cmd, input=bytes(width * height * 3 * PROBE_FRAMES), capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        log.info("video encoder %s does not open: %s", codec, err)
        return False
    if done.returncode != 0:
        log.info("video encoder %s does not open: %s", codec, _first_lines(done.stderr.decode(errors="replace")))
    return done.returncode == 0


def resolve_codec(codec: str) -> str:
    """``auto`` -> h264_nvenc when a CUDA device is present and the encoder opens, else libx264; others as given."""
    if codec != AUTO:
        return codec
    chosen = NVENC if cuda_present() and encoder_opens(NVENC) else FALLBACK
    _log_choice(chosen)
    return chosen


@functools.cache
def _log_choice(codec: str) -> None:
    log.info("video.codec=auto: encoding with %s", codec)


def encode_args(cfg: VideoConfig) -> list[str]:
    """ffmpeg's output options for ``cfg`` (codec resolved): quality as crf (x264/x265) or cq (NVENC), preset."""
    codec = resolve_codec(cfg.codec)
    args = ["-an", "-c:v", codec, "-pix_fmt", cfg.pixel_format]
    if codec.endswith("_nvenc"):
        preset = NVENC_PRESETS.get(cfg.preset, cfg.preset or "p1")
        return [*args, "-preset", preset, "-rc", "vbr", "-cq", str(cfg.crf), "-b:v", "0"]
    args += ["-crf", str(cfg.crf)]
    if codec in ("libx264", "libx265") and cfg.preset:
        args += ["-preset", cfg.preset]
    return args


def write_video(
    frames: Iterable[np.ndarray], path: str | os.PathLike, video_cfg: VideoConfig, total: int | None = None
) -> Path:
    """Encode ``frames`` (each (H, W, 3) uint8, all one size) to ``path``; returns the final path.

    The size comes from the first frame (an odd side is padded by one edge pixel: yuv420p needs even sides).
    On any exception the partial file is removed and the exception re-raised.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix or '.mp4'}")
    it = iter(frames)
    proc: subprocess.Popen | None = None
    with tempfile.TemporaryFile() as stderr:  # a file, not a pipe: ffmpeg can never block on it
        try:
            first = _even_frame(next(it, None), None)
            proc = _start_ffmpeg(tmp, first.shape[1], first.shape[0], video_cfg, stderr)
            try:
                count = _pipe_frames(proc, first, it, total)
                proc.stdin.close()
            except BrokenPipeError:
                proc.wait()
                raise EncodeError(_failure(path, "stopped reading frames", stderr)) from None
            if proc.wait() != 0:
                raise EncodeError(_failure(path, f"failed (exit {proc.returncode})", stderr))
            os.replace(tmp, path)
        except BaseException:
            _abort(proc, tmp)
            raise
    log.info("wrote %s (%d frames, %dx%d)", path, count, first.shape[1], first.shape[0])
    return path


def _pipe_frames(proc: subprocess.Popen, first: np.ndarray, rest, total: int | None) -> int:
    """Write every frame to ffmpeg's stdin; returns how many."""
    shape = first.shape
    count = 0
    with tqdm(total=total, unit="frame", desc="video", mininterval=1.0, leave=False) as bar:
        frame = first
        while frame is not None:
            if frame.shape != shape:
                raise ValueError(f"frame {count} has shape {frame.shape}, the first had {shape}")
            proc.stdin.write(np.ascontiguousarray(frame).data)
            count += 1
            bar.update(1)
            frame = _even_frame(next(rest, None), shape)
    return count


def _even_frame(frame: np.ndarray | None, shape: tuple[int, ...] | None) -> np.ndarray | None:
    """Check one frame is (H, W, 3) uint8 and pad odd sides by repeating the last row / column."""
    if frame is None:
        if shape is None:
            raise ValueError("no frames to write")
        return None
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frames must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    h, w = frame.shape[:2]
    if h % 2 or w % 2:
        frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return frame


def _start_ffmpeg(tmp: Path, width: int, height: int, cfg: VideoConfig, stderr) -> subprocess.Popen:
    source = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(cfg.fps), "-i", "-"]
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", *source, *encode_args(cfg)]
    cmd += ["-movflags", "+faststart", str(tmp)]  # index up front: browsers play it before it has loaded
    log.debug("ffmpeg command: %s", " ".join(cmd))
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr)


def _abort(proc: subprocess.Popen | None, tmp: Path) -> None:
    """Stop ffmpeg without letting it finish the file, then remove the partial file."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()
    if proc is not None and proc.stdin is not None:
        with contextlib.suppress(OSError):  # the pipe may be broken already: nothing left to flush
            proc.stdin.close()
    tmp.unlink(missing_ok=True)


def _tail(stderr) -> str:
    stderr.seek(0)
    return stderr.read().decode(errors="replace")[-STDERR_TAIL:].strip()


def _failure(path: Path, what: str, stderr) -> str:
    """One line: ffmpeg's own words, and where to look (a full disk and a bad video.* setting are the usual)."""
    return (
        f"ffmpeg {what} writing {path}: {_first_lines(_tail(stderr)) or 'no message'}; "
        f"check the free space in {path.parent} and the video.* settings (codec, pixel_format)"
    )


def _first_lines(text: str, count: int = 2) -> str:
    """ffmpeg's first distinct messages, without its "[muxer @ 0x...]" prefixes: the cause comes first."""
    lines = dict.fromkeys(re.sub(r"^\[[^\]]*\]\s*", "", line).strip() for line in text.splitlines())
    return one_line(" / ".join([line for line in lines if line][:count]))
