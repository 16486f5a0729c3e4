"""Samples: a Reason-RFT style JSON list of {"id", "image", "problem", "solution", "answer"}, and optionally a
``"video"`` (a video file or a folder of frames, relative to the image directory; :mod:`attnviz.clips`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from attnviz.clips import Clip, Sampling, read_clip
from attnviz.errors import AttnvizError

JSON_HINT = 'give a JSON list of {"image": ..., "problem": ...} objects, or one such object per line'


@dataclass
class Sample:
    id: str
    problem: str
    image_paths: list[str]  # relative to the image directory, as written in the JSON
    fields: dict[str, Any] = field(default_factory=dict)  # the raw JSON object (solution, answer, ...)
    video_path: str | None = None  # a video file or a folder of frames, relative to the image directory


def read_samples(json_path: str | Path) -> list[dict[str, Any]]:
    path = Path(json_path).expanduser()
    if not path.is_file():
        raise AttnvizError(f"dataset.json={json_path} does not exist; point it at the benchmark JSON file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise AttnvizError(f"dataset.json={json_path} is not text (not UTF-8); {JSON_HINT}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = _read_jsonl(text, path)
    if not isinstance(data, list):
        raise AttnvizError(
            f"dataset.json={json_path} must hold a JSON list of samples, not a {type(data).__name__}; {JSON_HINT}"
        )
    return data


def _read_jsonl(text: str, path: Path) -> list[Any]:
    try:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as err:
        raise AttnvizError(f"dataset.json={path} is neither JSON nor JSON lines ({err}); {JSON_HINT}") from None


def parse_sample(raw: Any, index: int, source: str | Path = "") -> Sample:
    """``source``: the dataset file, named in errors. A sample with a ``video`` may leave out ``image``."""
    where = f"sample {index}" + (f" of {source}" if source else "")
    if not isinstance(raw, dict):
        raise AttnvizError(f"{where} is a {type(raw).__name__}, not a JSON object; {JSON_HINT}")
    for key in ("problem", "image"):
        if key not in raw and not (key == "image" and "video" in raw):
            raise AttnvizError(f"{where} has no {key!r} field; every sample needs 'problem' and 'image' (or 'video')")
    images = raw.get("image", [])
    if isinstance(images, str):
        images = [images]
    if not isinstance(images, list) or not all(isinstance(p, str) for p in images):
        raise AttnvizError(
            f"{where}: 'image' must be a path or a list of paths, not {json.dumps(raw['image'])[:80]}"
        )
    video = raw.get("video")
    if video is not None and not (isinstance(video, str) and video.strip()):
        raise AttnvizError(
            f"{where}: 'video' must be one path (a video file or a folder of frames), not {json.dumps(video)[:80]}"
        )
    return Sample(id=str(raw.get("id", index)), problem=str(raw["problem"]), image_paths=images, fields=raw,
                  video_path=video)


def load_images(sample: Sample, image_dir: str | Path, max_image_num: int,
                sampling: Sampling | None = None) -> list[Image.Image | Clip]:
    """The sample's images (RGB), then its video's sampled clip if it has one (prompt order)."""
    if len(sample.image_paths) > max_image_num:
        raise AttnvizError(
            f"sample {sample.id} has {len(sample.image_paths)} images but max_image_num={max_image_num}; "
            f"raise max_image_num"
        )
    folder = Path(image_dir).expanduser()
    images: list[Image.Image | Clip] = [_open_image(folder / rel, sample.id) for rel in sample.image_paths]
    if sample.video_path is not None:
        images.append(read_clip(folder / sample.video_path, sample.video_path, sample.id, sampling))
    return images


def _open_image(path: Path, sample_id: str) -> Image.Image:
    if not path.is_file():
        raise AttnvizError(f"sample {sample_id}: image {path} does not exist; check dataset.image_dir")
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise AttnvizError(
            f"sample {sample_id}: image {path} cannot be read ({err}); replace it with a PNG or JPEG file"
        ) from None


def load_sample(
    json_path: str | Path, image_dir: str | Path, sample_idx: int, max_image_num: int = 2,
    sampling: Sampling | None = None,
) -> tuple[Sample, list[Image.Image | Clip]]:
    samples = read_samples(json_path)
    if not samples:
        raise AttnvizError(f"dataset.json={json_path} holds no samples; {JSON_HINT}")
    if not -len(samples) <= sample_idx < len(samples):
        raise AttnvizError(
            f"sample_idx={sample_idx} is out of range: {json_path} has {len(samples)} samples "
            f"(0..{len(samples) - 1}, or -{len(samples)}..-1)"
        )
    sample = parse_sample(samples[sample_idx], sample_idx % len(samples), json_path)
    return sample, load_images(sample, image_dir, max_image_num, sampling)


def video_sampling(dataset: Any) -> Sampling:
    """``dataset.video_*`` (a DatasetConfig) as the clip reader takes them."""
    return Sampling(dataset.video_fps, dataset.video_min_frames, dataset.video_max_frames)
