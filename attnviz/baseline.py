"""The generic-prompt baseline: where the model looks at the same images when asked nothing in particular.

``metrics.baseline=generic`` runs one extra prefill per sample with a neutral prompt about the same images
(``metrics.baseline_prompt``, "Describe the image.") and keeps, per layer, the image distribution of the row that
would write its first token. The metrics divide each step's image distribution by it (relative attention: where
the model looks *because of the question*, as in "MLLMs know where to look"), and ``render.image_weights=relative``
draws that ratio. Stored as ``trace/baseline.npz`` beside the rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from attnviz.analysis import image_positions
from attnviz.capture.recorder import MemorySink, RowRecorder, recording
from attnviz.metrics import save_baseline


def generic_baseline(
    loaded: Any, images: list[Image.Image], prompt_text: str, layers: list[int]
) -> dict[int, np.ndarray]:
    """Per layer the (C,) image-cell distribution of the generic prompt's last row (cells of every image, raster
    order, images in order: the order :func:`attnviz.analysis.image_positions` gives)."""
    _, inputs, geometry = loaded.adapter.prepare(prompt_text, images)  # images, then a video's clip
    cells = image_positions(geometry)  # (C,)
    inputs = {k: v.to(loaded.device) if hasattr(v, "to") else v for k, v in inputs.items()}
    sink = MemorySink("float32")
    with torch.inference_mode(), recording(RowRecorder(layers, sink)):
        loaded.model(**inputs, use_cache=False, logits_to_keep=1)  # the prefill: one row per layer
    dists = {}
    for layer in layers:
        weights = np.clip(sink.rows[layer][0][0][cells].astype(np.float64), 0.0, None)  # (C,)
        total = weights.sum()
        dists[layer] = (weights / total if total > 0 else weights).astype(np.float32)
    return dists


def write_generic_baseline(
    loaded: Any, images: list[Image.Image], prompt_text: str, layers: list[int], trace_dir: Path
) -> None:
    if images:
        save_baseline(trace_dir, generic_baseline(loaded, images, prompt_text, layers), prompt_text)
