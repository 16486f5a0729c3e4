"""Run-directory files: metadata.json (written last, atomically) and package versions."""

from __future__ import annotations

import json
import platform
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from attnviz.trace import Trace, atomic_write

VIDEO_NAME = "combined_attention_visualization_layer{layer}.mp4"
PACKAGES = ("attnviz", "torch", "transformers", "hydra-core", "numpy", "pillow", "imageio-ffmpeg")


def video_name(layer: int) -> str:
    return VIDEO_NAME.format(layer=layer)


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def token_table(trace: Trace) -> list[dict[str, Any]]:
    return [
        {"pos": i, "id": tid, "text": text, "kind": kind, "generated": i >= trace.prompt_len}
        for i, (tid, text, kind) in enumerate(zip(trace.token_ids, trace.token_texts, trace.token_kinds, strict=True))
    ]


def write_json_atomic(path: Path, payload: dict[str, Any]) -> Path:
    text = json.dumps(payload, indent=2, ensure_ascii=False, default=str)
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    return path


def read_metadata(run_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / "metadata.json").read_text(encoding="utf-8"))
