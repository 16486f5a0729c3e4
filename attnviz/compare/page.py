"""``compare.html``: one self-contained page (styles, script and data inline; opens from disk, no network) to step
through the answer and switch between the compared models, or show ``model − reference`` in diverging colours.

The payload is small: per model and layer only the answer steps' rows over the shown keys (the text panel's
tokens and the image cells; a step keeps the keys it can reach, so rows are triangular), as shares of the row's
non-sink weight (:func:`attnviz.comparison.nosink_shares`) of the head-mean rows, float16, base64. Renormalised
over the shown keys they are the single-run video's weights (``render.image_weights=relative`` is not offered
here); subtracted they are the comparison video's differences.
Safety as :mod:`attnviz.viewer.page`: data as escaped JSON, token text only through ``textContent``, a
Content-Security-Policy allowing the page's own script and style by hash and nothing else.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from attnviz.analysis import answer_segments, row_blocks
from attnviz.compare.video import DIVERGING
from attnviz.comparison import CompareKeys, js_steps, nosink_shares
from attnviz.render.colors import CURRENT_TOKEN_RGB, EXCLUDED_RGB
from attnviz.schema import RenderConfig
from attnviz.trace import Trace
from attnviz.viewer.page import CORE_SCRIPT, PAGE_STYLE, PAGE_UI_SCRIPT, self_contained_page, write_html
from attnviz.viewer.payload import lut_base64, picture_uri

log = logging.getLogger(__name__)

PAGE_NAME = "compare.html"
# the viewer's core and the pages' shared DOM helpers and style rules first
ASSETS = ("compare.html", (PAGE_STYLE, "compare.css"), (CORE_SCRIPT, PAGE_UI_SCRIPT, "compare_core.js", "compare.js"))
MAX_ROW_BYTES = 48 * 2**20  # every model's embedded layers together, before base64


@dataclass(frozen=True)
class PageModel:
    trace: Trace
    label: str
    correct: bool | None
    layers: dict[int, int]  # reference layer -> this model's layer


def page_layers(models: Sequence[PageModel]) -> list[int]:
    """Reference layers whose match every model holds rows of (the page's layer choice)."""
    ref = models[0].trace
    return [a for a in ref.layers if all(m.layers.get(a) in m.trace.rows for m in models)]


def row_keys(keys: CompareKeys, trace: Trace) -> np.ndarray:
    """(K,) int64 sorted positions a page row holds: the text panel's keys and the image cells."""
    width = len(trace.token_ids) - 1
    return np.union1d(keys.text[keys.text < width], keys.image).astype(np.int64)


def encode_shares(trace: Trace, layer: int, keys: np.ndarray, sinks: np.ndarray) -> bytes:
    """Step ``t`` keeps the ``searchsorted(keys, P + t)`` keys it reaches: float16 shares, little endian, back to
    back (sinks as 0: the page greys them)."""
    counts = np.searchsorted(keys, trace.prompt_len + np.arange(trace.n_steps))  # (T,)
    parts = []
    for start, rows in row_blocks(trace, layer):
        shares = np.nan_to_num(nosink_shares(rows, sinks)[:, keys])  # (n, K)
        parts += [shares[i, : counts[start + i]] for i in range(len(rows))]
    flat = np.concatenate(parts) if parts else np.zeros(0)
    return flat.astype("<f2").tobytes()


def pick_layers(models: Sequence[PageModel], layers: list[int], first: int, per_layer: int,
                max_bytes: int) -> list[int]:
    """``first`` (when stored) and then the other layers in order while every model's rows fit ``max_bytes``."""
    chosen = [first] if first in layers else layers[:1]
    for layer in layers:
        if layer not in chosen and per_layer * len(models) * (len(chosen) + 1) <= max_bytes:
            chosen.append(layer)
    if len(chosen) < len(layers):
        log.warning("compare page: layers %s left out (over %d MB of rows)",
                    sorted(set(layers) - set(chosen)), max_bytes // 2**20)
    return sorted(chosen)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _js(ref: Trace, m: PageModel, layer: int) -> list[float | None]:
    steps = js_steps(ref, m.trace, layer, m.layers[layer])
    return [None if np.isnan(v) else round(float(v), 4) for v in steps]


def _images(trace: Trace, images: list[Image.Image]) -> list[dict[str, Any]]:
    out = []
    for g in trace.images:
        if g.index >= len(images):
            continue
        raster = range(g.token_start, g.token_start + g.grid_h * g.grid_w)
        cells = g.cell_positions if g.cell_positions is not None else raster  # (grid_h * grid_w,) -1: no token
        out.append({"index": g.index, "grid_h": g.grid_h, "grid_w": g.grid_w, "pixel_w": g.pixel_w,
                    "pixel_h": g.pixel_h, "cells": [int(c) for c in cells],
                    "src": picture_uri(g, images[g.index])})
    return out


def build_compare_payload(models: Sequence[PageModel], keys: CompareKeys, images: list[Image.Image],
                          render: RenderConfig, *, sample_id: str, text_start: int, layer: int,
                          max_row_bytes: int = MAX_ROW_BYTES) -> dict[str, Any]:
    """Everything the page needs, JSON-ready (``models[0]``: the reference; ``layer``: the reference layer shown
    first)."""
    ref = models[0].trace
    positions = row_keys(keys, ref)
    per_layer = 2 * int(np.searchsorted(positions, ref.prompt_len + np.arange(ref.n_steps)).sum())
    layers = pick_layers(models, page_layers(models), layer, per_layer, max_row_bytes)
    text = keys.text[keys.text < len(ref.token_ids)]
    return {
        "format": 1, "kind": "compare_page", "sample_id": sample_id,
        "title": f"attnviz · compare · sample {sample_id}",
        "prompt_len": ref.prompt_len, "n_steps": ref.n_steps, "text_start": text_start,
        "text_keys": text.tolist(), "texts": [ref.token_texts[p] for p in text],
        "kinds": "".join(ref.token_kinds[p][0] for p in text),
        "keys": positions.tolist(), "sinks": np.flatnonzero(keys.sinks[positions]).tolist(),
        "segments": [{"name": s.name, "first": s.first, "last": s.last} for s in answer_segments(ref)],
        "images": _images(ref, images),
        "layers": layers,
        "models": [{"label": m.label, "correct": m.correct, "layers": {str(a): m.layers[a] for a in layers},
                    "rows": [_b64(encode_shares(m.trace, m.layers[a], positions, keys.sinks)) for a in layers],
                    "js": [_js(ref, m, a) for a in layers] if i else None}
                   for i, m in enumerate(models)],
        "colormaps": {"model": lut_base64(render.colormap), "diverging": lut_base64(DIVERGING)},
        "current_rgb": list(CURRENT_TOKEN_RGB), "excluded_rgb": list(EXCLUDED_RGB),
        "settings": {"layer": layer if layer in layers else (layers or [None])[0], "colormap": render.colormap,
                     "normalization": str(render.norm), "gamma": float(render.gamma),
                     "log_decades": float(render.log_decades), "tint_alpha": float(render.tint_alpha),
                     "grid_lines": bool(render.grid_lines)},
    }


def render_compare_page(payload: dict[str, Any]) -> str:
    return self_contained_page("attnviz.compare", ASSETS, payload, payload.get("title") or "attnviz compare")


def write_compare_page(payload: dict[str, Any], out_dir: Path) -> Path:
    """Write ``out_dir/compare.html``."""
    return write_html(Path(out_dir) / PAGE_NAME, render_compare_page(payload))
