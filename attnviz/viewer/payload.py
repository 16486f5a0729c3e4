"""The data a viewer page carries inline: tokens, images, quantised rows, colour tables and the starting settings.

Rows are stored as float16 (little endian, base64) and *triangular*: step ``t`` keeps its ``prompt_len + t``
valid keys only (``trace.row(layer, t)``), concatenated, so step ``t`` starts at ``t * prompt_len + t * (t - 1) / 2``.
One layer costs ``2 * (T * prompt_len + T * (T - 1) / 2)`` bytes, 4/3 of that in base64: 8.3 kB for the demo
(131-token prompt, 22 steps; its whole page with 4 layers and the image is 121 kB), 1.4 MB for a 300-token
prompt and a 768-token answer. Layers beyond ``max_row_bytes`` are left out (the page and the log say which);
the video's layer is always kept.

Each image carries ``cells``, the sequence position of every cell as runs (:func:`cell_runs`): the positions the
MP4 reads the cells from (:meth:`attnviz.trace.ImageGeometry.cell_weights`), which are one raster run only for
Qwen-style geometry (LLaVA-NeXT's newline tokens, InternVL's and Idefics3's tiles and thumbnails, Mistral 3's
``[IMG_BREAK]`` interleave them). Its picture is the part of the image the grid covers (``ImageGeometry.view``).
"""

from __future__ import annotations

import base64
import io
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from attnviz.analysis import answer_segments, row_starts
from attnviz.render.colors import CURRENT_TOKEN_RGB, colormap_lut
from attnviz.schema import Norm, RenderConfig
from attnviz.sinks import sink_mask
from attnviz.trace import ImageGeometry, Trace

log = logging.getLogger(__name__)

PAGE_COLORMAPS = ("red_green", "viridis", "magma", "inferno", "plasma", "cividis", "turbo", "coolwarm", "gray")
# Sink categories a page can leave out of the colour scale (bit flags, one int per sequence position).
SINK_SPECIAL = 1  # special tokens and the chat template's scaffolding (role headers, turn ends, vision markers)
SINK_FIRST = 2  # position 0, where attention sinks gather
SINK_SYSTEM = 4  # the system turn of the chat template
MAX_ROW_BYTES = 48 * 2**20  # all embedded layers together, before base64
MAX_IMAGE_SIDE = 640  # images are embedded at most this large (they are shown at about this size)
JPEG_ABOVE_BYTES = 200_000  # a PNG larger than this is embedded as JPEG instead


@dataclass(frozen=True)
class PageSettings:
    """What the page shows first; every one of these can be switched in the page."""

    layer: int
    colormap: str = "red_green"
    normalization: Norm = Norm.step  # type: ignore[valid-type]
    gamma: float = 0.4
    log_decades: float = 3.0  # normalization=log: decades below the step's maximum (render.log_decades)
    exclude: tuple[str, ...] = ()  # sink categories left out of the scale: "special", "first", "system"
    tint_alpha: float = 0.45
    grid_lines: bool = True


# The video's sink groups (render.exclude, attnviz.sinks.sink_mask) -> the page's coarser categories: the vision
# markers and the chat template's scaffolding are special tokens there, BOS is the first token.
PAGE_SINKS = {"bos": "first", "system": "system", "special": "special", "vision_markers": "special",
              "chat_template": "special"}


def settings_from_render(render_cfg: RenderConfig, layer: int) -> PageSettings:
    """The page's first settings from the run's render config, so the page opens as close to the video as its
    categories allow."""
    exclude = [PAGE_SINKS[str(group)] for group in render_cfg.exclude]
    return PageSettings(
        layer=layer,
        colormap=render_cfg.colormap,
        normalization=Norm(str(render_cfg.norm)),
        gamma=float(render_cfg.gamma),
        log_decades=float(render_cfg.log_decades),
        exclude=tuple(dict.fromkeys(exclude)),
        tint_alpha=float(render_cfg.tint_alpha),
        grid_lines=bool(render_cfg.grid_lines),
    )


def sink_flags(trace: Trace) -> np.ndarray:
    """(S,) uint8 sink categories per position (SINK_* bits), from the trace's own chat format."""
    def group(name: str) -> np.ndarray:
        return sink_mask(trace.token_texts, trace.token_kinds, [name], chat=trace.chat_format)

    flags = np.zeros(len(trace.token_ids), dtype=np.uint8)
    flags[group("special") | group("chat_template")] |= SINK_SPECIAL
    flags[group("bos")] |= SINK_FIRST
    flags[group("system")] |= SINK_SYSTEM
    return flags


def encode_rows(trace: Trace, layer: int) -> bytes:
    """A layer's rows as triangular little-endian float16 bytes (see the module doc)."""
    rows = [trace.row(layer, t) for t in range(trace.n_steps)]  # each (prompt_len + t,)
    flat = np.concatenate(rows) if rows else np.zeros(0, np.float32)
    return flat.astype("<f2").tobytes()


def decode_rows(data: bytes, prompt_len: int, n_steps: int) -> list[np.ndarray]:
    """Inverse of :func:`encode_rows` (the page does the same in JavaScript); for tests and tools."""
    flat = np.frombuffer(data, dtype="<f2").astype(np.float32)
    starts = row_starts(prompt_len, n_steps)
    return [flat[starts[t] : starts[t + 1]] for t in range(n_steps)]


def pick_layers(trace: Trace, first: int, max_bytes: int) -> tuple[list[int], list[int]]:
    """(layers embedded, layers left out): ``first`` always, then the others in order while they fit."""
    per_layer = 2 * int(row_starts(trace.prompt_len, trace.n_steps)[-1])  # float16 values of one layer
    kept, left_out = [first], []
    for layer in trace.layers:
        if layer == first:
            continue
        (kept if per_layer * (len(kept) + 1) <= max_bytes else left_out).append(layer)
    if left_out:
        log.warning("viewer: layers %s left out of the page (over %d MB of rows)", left_out, max_bytes // 2**20)
    return kept, left_out


def image_data_uri(image: Image.Image, size: tuple[int, int]) -> str:
    """The image drawn at ``size`` = (w, h), at most MAX_IMAGE_SIDE (aspect kept), as a data: URI."""
    scale = min(1.0, MAX_IMAGE_SIDE / max(size))
    shown = image.convert("RGB").resize((max(1, round(size[0] * scale)), max(1, round(size[1] * scale))))
    buf = io.BytesIO()
    shown.save(buf, format="PNG", optimize=True)
    mime = "image/png"
    if buf.tell() > JPEG_ABOVE_BYTES:
        buf = io.BytesIO()
        shown.save(buf, format="JPEG", quality=90)
        mime = "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def picture_uri(g: ImageGeometry, image: Image.Image) -> str:
    """The part of ``image`` the grid covers (``g.view``) as a data: URI, at its own size and proportions, as the
    MP4's tile takes it (not stretched to the model's pixel size, which for square or tiled inputs, as Gemma 3's,
    InternVL's or Idefics3's, has another aspect): the grid spans the whole picture either way."""
    shown = g.view(image)
    return image_data_uri(shown, shown.size)


def lut_base64(name: str) -> str:
    return base64.b64encode(colormap_lut(name).tobytes()).decode("ascii")  # (256, 3) uint8


def build_payload(
    trace: Trace,
    images: list[Image.Image],
    settings: PageSettings,
    *,
    sample_id: str,
    text_start: int,
    title: str = "",
    max_row_bytes: int = MAX_ROW_BYTES,
) -> dict[str, Any]:
    """Everything the page needs, JSON-ready."""
    layers, left_out = pick_layers(trace, settings.layer, max_row_bytes)
    colormaps = list(dict.fromkeys([settings.colormap, *PAGE_COLORMAPS]))
    return {
        "format": 1,
        "title": title,
        "sample_id": sample_id,
        "prompt_len": trace.prompt_len,
        "n_steps": trace.n_steps,
        "text_start": text_start,
        "texts": trace.token_texts,
        "kinds": "".join(kind[0] for kind in trace.token_kinds),  # t(ext) / i(mage) / s(pecial)
        "sinks": base64.b64encode(sink_flags(trace).tobytes()).decode("ascii"),
        "segments": [{"name": s.name, "first": s.first, "last": s.last} for s in answer_segments(trace)],
        "images": [
            {**_geometry(g), "src": picture_uri(g, images[g.index])}
            for g in trace.images
            if g.index < len(images)
        ],
        "layers": [{"layer": layer, "rows": base64.b64encode(encode_rows(trace, layer)).decode("ascii")}
                   for layer in layers],
        "left_out_layers": left_out,
        "colormaps": {name: lut_base64(name) for name in colormaps},
        "current_rgb": list(CURRENT_TOKEN_RGB),
        "settings": {
            "layer": settings.layer,
            "colormap": settings.colormap,
            "normalization": str(settings.normalization),
            "gamma": settings.gamma,
            "log_decades": settings.log_decades,
            "exclude": list(settings.exclude),
            "tint_alpha": settings.tint_alpha,
            "grid_lines": settings.grid_lines,
        },
    }


def cell_positions(g: ImageGeometry) -> np.ndarray:
    """(grid_h * grid_w,) int64 sequence position of every cell, raster order, -1 for a cell without a token: the
    positions :meth:`ImageGeometry.cell_weights` (the MP4) reads each cell's weight from."""
    if g.cell_positions is not None:
        return np.asarray(g.cell_positions, dtype=np.int64)
    return np.arange(g.token_start, g.token_start + g.grid_h * g.grid_w, dtype=np.int64)


def cell_runs(g: ImageGeometry) -> list[list[int]]:
    """The cell -> position map as runs ``[[first, count], ...]``: ``count`` cells at consecutive positions from
    ``first`` (``first == -1``: cells without a token). A raster run (Qwen) is one run, a LLaVA-NeXT grid one per
    row, a tiled grid (InternVL, Idefics3) one per tile row; the page expands them (``attnvizCore.cellMap``)."""
    pos = cell_positions(g)
    if not len(pos):
        return []
    follows = np.where(pos[:-1] >= 0, pos[:-1] + 1, -1)  # what continues the run each cell is in
    starts = np.concatenate([[0], np.flatnonzero(pos[1:] != follows) + 1])
    counts = np.diff(np.append(starts, len(pos)))
    return [[int(pos[s]), int(n)] for s, n in zip(starts, counts, strict=True)]


def expand_runs(runs: list[list[int]]) -> list[int]:
    """Inverse of :func:`cell_runs` (the page does the same in JavaScript); for tests and tools."""
    return [first + k if first >= 0 else -1 for first, count in runs for k in range(count)]


def _geometry(g: ImageGeometry) -> dict[str, Any]:
    """What the page draws an entry by: its grid, where its first token sits (the text panel's image reference) and
    ``cells``, every cell's sequence position (:func:`cell_runs`); a video's temporal patch adds which video, its
    frames and time."""
    out = {"index": g.index, "token_start": g.token_start, "grid_h": g.grid_h, "grid_w": g.grid_w,
           "pixel_h": g.pixel_h, "pixel_w": g.pixel_w, "label": g.label(), "cells": cell_runs(g)}
    if g.is_video:
        out.update(video=g.video, frames=list(g.frames), n_frames=g.n_frames, time_s=g.time_s)
    return out
