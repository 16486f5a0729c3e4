"""One generation per (model, sample, prompt, generation settings), shared by every job of a sweep that needs it.

An entry is ``<cache>/<key>/`` holding ``trace/`` (rows, tokens, geometry, input images) and ``producer.json``
(model facts, prompt, the producing job's timings). The key hashes everything that changes the generated
answer or its rows and nothing a job varies after that (layer, rendering, video).

Concurrency: a job holds an exclusive ``fcntl.flock`` on ``<cache>/<key>.lock`` for the whole look-up. The
first one generates and publishes the entry (written under a temporary name, then renamed: nobody ever sees
half a trace); the others block meanwhile, then load it. Jobs of other samples use other locks and run on.
Run directories get hard links to the entry's files (a copy across file systems), so each run directory stays
a complete run that ``render_only`` can use.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from PIL import Image

from attnviz.clips import Clip
from attnviz.files import TRACE_DIR
from attnviz.outputs import write_json_atomic
from attnviz.rerender import save_inputs
from attnviz.schema import to_data
from attnviz.trace import Trace, load_trace, save_trace

log = logging.getLogger(__name__)
PRODUCER = "producer.json"
PLAN = "layers.json"  # layers the sweeps using this cache render (written by the sweep callback)
MODEL_KEYS = ("path", "attn_implementation", "min_pixels", "max_pixels")


def trace_key(cfg: Any, sample_fields: dict[str, Any], images: list[Image.Image | Clip]) -> str:
    """Hash of what decides the generated tokens and their rows (not the layer, not the rendering).

    ``cfg``: the run's settings (an AppConfig, a composed config, or either as plain data)."""
    plain = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True) if OmegaConf.is_config(cfg) else to_data(cfg)
    payload = {
        "model": {k: plain["model"].get(k) for k in MODEL_KEYS},
        "device": plain["device"],
        "dtype": plain["dtype"],
        "max_image_num": plain["max_image_num"],
        "prompt_template": plain["dataset"]["prompt_template"],
        "generation": plain["generation"],
        "storage_dtype": plain["capture"]["dtype"],
        "heads": plain["capture"].get("heads"),  # per-head rows kept or not
        "mode": plain.get("mode", "generate"),  # generate, or replay of a stored answer (and which key)
        "replay_key": plain["capture"].get("replay_key"),
        "sample": sample_fields,
        "images": [_image_digest(image) for image in images],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _image_digest(image: Image.Image | Clip) -> str:
    """An image's pixels; a video's clip: its sampled frames and their frame numbers."""
    is_clip = isinstance(image, Clip)
    digest = hashlib.sha256(f"clip {image.indices}".encode() if is_clip else b"")
    for frame in image.frames if is_clip else (image,):
        digest.update(f"{frame.mode}{frame.size}".encode())
        digest.update(frame.tobytes())
    return digest.hexdigest()


@contextmanager
def locked(cache_dir: Path, name: str) -> Iterator[None]:
    """Exclusive lock ``<cache>/<name>.lock`` (fcntl.flock: local disks, NFSv4, Lustre mounted with flock)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / f"{name}.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class SharedTrace:
    trace: Trace
    info: dict[str, Any]  # producer.json: key, model, prompt, timings of the producing job
    generated: bool  # True: this job ran the generation
    wait_s: float  # waiting for the lock + loading, or generating + saving


def read_entry(entry: Path) -> tuple[Trace, dict[str, Any]] | None:
    if not (entry / PRODUCER).is_file():
        return None
    return load_trace(entry / TRACE_DIR), json.loads((entry / PRODUCER).read_text())


def publish(entry: Path, trace: Trace, images: list[Image.Image], info: dict[str, Any], dtype: str) -> None:
    """Write the entry under a temporary name, then rename it into place (replacing an older entry)."""
    tmp = entry.with_name(f".{entry.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    save_inputs(images, save_trace(trace, tmp / TRACE_DIR, dtype))
    write_json_atomic(tmp / PRODUCER, info)
    if entry.exists():  # an entry lacking layers this job needs: readers hold the lock, so swapping is safe
        old = entry.with_name(f".{entry.name}.old-{os.getpid()}")
        os.rename(entry, old)
        os.rename(tmp, entry)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, entry)


def link_trace(entry: Path, run_dir: Path) -> None:
    """Give ``run_dir/trace`` the entry's files: hard links, or copies across file systems."""
    dest = run_dir / TRACE_DIR
    if dest.is_symlink() or dest.is_file():
        dest.unlink()
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for src in sorted((entry / TRACE_DIR).iterdir()):
        try:
            os.link(src, dest / src.name)
        except OSError:
            shutil.copy2(src, dest / src.name)


def shared_trace(
    cache_dir: Path,
    key: str,
    run_dir: Path,
    *,
    own_layers: Callable[[int], list[int]],
    produce: Callable[[list[int]], tuple[Trace, dict[str, Any]]],
    images: list[Image.Image],
    dtype: str,
) -> SharedTrace:
    """Load the entry ``key`` or, if missing or lacking one of ``own_layers(num_layers)``, produce it.

    ``produce(extra_layers)`` loads the model, generates once capturing its layers plus ``extra_layers`` (those
    of an entry being replaced) and returns the trace and its producer facts (``info["model"]["num_layers"]``).
    """
    t0 = time.perf_counter()
    entry = cache_dir / key
    with locked(cache_dir, key):
        found = read_entry(entry)
        needed = [] if found is None else own_layers(found[1]["model"]["num_layers"])
        generated = found is None or not set(needed) <= set(found[0].layers)
        if generated:
            if found is not None:
                log.warning("shared trace %s holds layers %s, this job needs %s: generating again with both",
                            key, found[0].layers, needed)
            trace, info = produce(found[0].layers if found else [])
            publish(entry, trace, images, info, dtype)
            found = read_entry(entry)  # every job renders what is on disk (rows stored as capture.dtype)
        link_trace(entry, run_dir)
    assert found is not None
    return SharedTrace(found[0], found[1], generated, time.perf_counter() - t0)


def planned_layers(cache_dir: Path) -> list[int]:
    path = cache_dir / PLAN
    return json.loads(path.read_text())["layer_idx"] if path.is_file() else []


def add_planned_layers(cache_dir: Path, layers: list[int]) -> list[int]:
    """Merge ``layers`` into the cache's plan (several sweeps may share one cache); returns the plan."""
    with locked(cache_dir, "layers"):
        merged = sorted({*planned_layers(cache_dir), *layers})
        write_json_atomic(cache_dir / PLAN, {"layer_idx": merged})
    return merged
