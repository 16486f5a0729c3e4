"""The trace: everything a render needs, with no model attached.

A trace is the generated sequence (token ids, their text and kind), the geometry of every image's tokens and,
per captured decoder layer, the head-averaged attention rows that *produced* each generated token.

Row semantics (used everywhere in attnviz): ``rows[layer][t]`` is the softmax attention of the query at position
``prompt_len - 1 + t`` over keys ``0 .. prompt_len + t - 1`` (zeros after). That query's output is the logits
that chose generated token ``t``, so row ``t`` is "what the model looked at when it wrote token t". For ``t == 0``
it is the prompt's last position (the prefill step). The same holds for a replayed answer (``mode == "replay"``):
row ``t`` is the attention that scored stored answer token ``t`` under teacher forcing.

Rows are stored ragged on disk (see :mod:`attnviz.trace_store`) and loaded lazily: ``rows[layer]`` may be a dense
(T, S - 1) array (traces built in memory) or a :class:`~attnviz.trace_store.RaggedRows`; both index as
``rows[layer][t]``. Read rows through :meth:`Trace.row` and :meth:`Trace.head_rows`, which give exact lengths.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from attnviz.analysis import TOKEN_KINDS
from attnviz.chat import ChatFormat
from attnviz.errors import AttnvizError
from attnviz.files import TRACE_DIR, heads_file, rows_file
from attnviz.trace_store import HEADER, TRACE_FORMAT, TraceWriter, atomic_write, open_rows

__all__ = [
    "TOKEN_KINDS", "ImageGeometry", "Trace", "TRACE_FORMAT", "atomic_write", "load_trace", "prune_trace", "save_trace",
    "trace_header",
]


@dataclass(frozen=True)
class ImageGeometry:
    """Where one image's tokens sit in the sequence and how they tile the image.

    By default the image's cells are ``grid_h * grid_w`` consecutive tokens from ``token_start``, raster order
    (Qwen2-VL, LLaVA-1.5). Families whose cell tokens are interleaved with other image tokens (LLaVA-NeXT /
    OneVision: a base tile first, a newline token after each row of the stitched tile grid) list the sequence
    position of every cell in ``cell_positions`` (raster order, -1 for a cell without a token). ``view_box``
    is the part of the caller's image the grid covers, (left, top, right, bottom) in its pixels (LLaVA-1.5's
    centre crop); None means the whole image.

    A video's temporal patches (a pair of frames each, Qwen2-VL / 2.5-VL / 3-VL) are entries of their own, one per
    pair and in time order, like images: ``video`` names the video, ``frames`` the pair's sampled frames and
    ``time_s`` the time of its first frame. Metrics, regions and panels treat them as images.
    """

    index: int  # image number in the prompt, 0-based
    token_start: int  # sequence position of the image's first image token
    grid_h: int  # merged-patch rows (tokens per column)
    grid_w: int  # merged-patch columns (tokens per row)
    pixel_h: int  # height of the image the model saw (after the processor's resize)
    pixel_w: int  # width of the image the model saw
    cell_positions: tuple[int, ...] | None = None  # (grid_h * grid_w,) explicit positions, -1 = no token
    view_box: tuple[float, float, float, float] | None = None  # grid's region of the caller's image, in pixels
    video: int | None = None  # a video's temporal patch: the video's number in the prompt, 0-based; None: an image
    frames: tuple[int, int] | None = None  # (first, last) sampled frame of the patch, 0-based, of n_frames
    n_frames: int | None = None  # frames sampled from the video
    time_s: float | None = None  # the patch's first frame's time in the video, seconds

    def __post_init__(self) -> None:  # JSON gives lists back: keep the dataclass hashable
        if self.cell_positions is not None:
            object.__setattr__(self, "cell_positions", tuple(int(p) for p in self.cell_positions))
            if len(self.cell_positions) != self.grid_h * self.grid_w:
                raise ValueError(f"{len(self.cell_positions)} cell positions for a {self.grid_h}x{self.grid_w} grid")
        if self.view_box is not None:
            object.__setattr__(self, "view_box", tuple(float(v) for v in self.view_box))
        if self.frames is not None:
            object.__setattr__(self, "frames", tuple(int(f) for f in self.frames))

    @property
    def is_video(self) -> bool:
        return self.video is not None

    def label(self) -> str:
        """``image 2``, or for a video's patch ``frames 5–6 of 16 · 2.0 s`` (frames counted from 1)."""
        if self.frames is None:
            return f"image {self.index + 1}"
        first, last = self.frames
        when = f" · {self.time_s:.1f} s" if self.time_s is not None else ""
        return f"frames {first + 1}–{last + 1} of {self.n_frames}{when}"

    @property
    def n_tokens(self) -> int:
        """Number of cells that have a token."""
        return len(self.positions)

    @property
    def positions(self) -> range | list[int]:
        """Sequence positions of the cell tokens, raster order (cells without a token skipped)."""
        if self.cell_positions is None:
            return range(self.token_start, self.token_start + self.grid_h * self.grid_w)
        return [p for p in self.cell_positions if p >= 0]

    def cell_weights(self, row: np.ndarray) -> np.ndarray:
        """(S,) attention row -> (grid_h, grid_w) weights of this image's cells, raster order (0: no token)."""
        row = np.asarray(row)
        if self.cell_positions is None:
            cells = row[self.token_start : self.token_start + self.grid_h * self.grid_w]
        else:
            index = np.asarray(self.cell_positions, dtype=np.int64)  # (grid_h * grid_w,)
            cells = np.where(index >= 0, row[np.maximum(index, 0)], 0).astype(row.dtype, copy=False)
        return cells.reshape(self.grid_h, self.grid_w)

    def view(self, image: Image.Image) -> Image.Image:
        """The part of ``image`` the grid covers (the whole image unless ``view_box`` says otherwise)."""
        if self.view_box is None:
            return image
        return image.crop(tuple(round(v) for v in self.view_box))


@dataclass
class Trace:
    token_ids: list[int]  # (S,) prompt followed by generated (or replayed) tokens
    token_texts: list[str]  # (S,) decoded text of each token
    token_kinds: list[str]  # (S,) one of TOKEN_KINDS
    prompt_len: int
    images: list[ImageGeometry] = field(default_factory=list)
    rows: dict[int, Any] = field(default_factory=dict)  # layer -> (T, S - 1) rows, head-averaged, see module doc
    heads: dict[int, Any] = field(default_factory=dict)  # layer -> (T, H, S - 1) per-head rows, where captured
    mode: str = "generate"  # generate | replay: how the answer tokens came about
    chat_format: ChatFormat = field(default_factory=lambda: ChatFormat.from_json(None))  # the template's markers
    baseline: dict[int, np.ndarray] = field(default_factory=dict)  # layer -> (C,) generic-prompt cell distribution

    @property
    def n_steps(self) -> int:
        """Number of answer tokens T (one frame each)."""
        return len(self.token_ids) - self.prompt_len

    @property
    def layers(self) -> list[int]:
        return sorted(self.rows)

    @property
    def head_layers(self) -> list[int]:
        return sorted(self.heads)

    def row(self, layer: int, step: int) -> np.ndarray:
        """(prompt_len + step,) float32 head-averaged attention that produced answer token ``step``."""
        return np.asarray(self.rows[layer][step][: self.prompt_len + step], dtype=np.float32)

    def head_rows(self, layer: int, step: int) -> np.ndarray:
        """(H, prompt_len + step) float32 per-head attention that produced answer token ``step``."""
        if layer not in self.heads:
            raise AttnvizError(
                f"layer {layer} has no per-head rows in this trace (per-head layers: {self.head_layers}); "
                "capture again with capture.heads=all, or render the head mean (render.heads=mean)"
            )
        return np.asarray(self.heads[layer][step][..., : self.prompt_len + step], dtype=np.float32)

    def generated_text(self) -> str:
        return "".join(self.token_texts[self.prompt_len :])


def trace_header(trace: Trace) -> dict[str, Any]:
    """Everything in trace.json except the storage facts the writer adds."""
    return {
        "token_ids": trace.token_ids,
        "token_texts": trace.token_texts,
        "token_kinds": trace.token_kinds,
        "prompt_len": trace.prompt_len,
        "images": [asdict(g) for g in trace.images],
        "mode": trace.mode,
        "chat_format": trace.chat_format.to_json(),
    }


def save_trace(trace: Trace, directory: str | os.PathLike, dtype: str = "float32") -> Path:
    """Write ``trace`` (dense or ragged rows) into ``directory`` in the streamed format; trace.json last."""
    writer = TraceWriter(directory, trace.rows, trace.heads, dtype)
    try:
        for step in range(trace.n_steps):
            for layer in trace.layers:
                heads = trace.head_rows(layer, step)[None] if layer in trace.heads else None
                writer.write(layer, step, trace.row(layer, step)[None], heads)
    except BaseException:
        writer.abort()
        raise
    return writer.finish(trace_header(trace))


def prune_trace(directory: str | os.PathLike, keep: list[int]) -> None:
    """Keep only the rows of layers ``keep`` (those a run measured but does not render go): trace.json is rewritten
    first, so a crash in between leaves a complete trace and some stray row files, never a trace missing rows."""
    directory = Path(directory)
    header = json.loads((directory / HEADER).read_text())
    dropped = [ly for ly in header["layers"] if ly not in keep]
    if not dropped:
        return
    header["layers"] = [ly for ly in header["layers"] if ly in keep]
    header["head_layers"] = [ly for ly in header["head_layers"] if ly in keep]
    text = json.dumps(header)
    atomic_write(directory / HEADER, lambda f: f.write(text.encode()))
    for layer in dropped:
        for name in (rows_file(layer), heads_file(layer)):
            (directory / name).unlink(missing_ok=True)


def find_trace_dir(path: str | os.PathLike) -> Path:
    """A run directory (holding ``trace/``) or a trace folder itself -> the trace folder; clear errors otherwise."""
    path = Path(path).expanduser()
    for candidate in (path, path / TRACE_DIR):
        if (candidate / HEADER).is_file():
            return candidate
    if any(path.glob("trace/.*.part")) or any(path.glob(".*.part")):
        raise AttnvizError(f"{path} holds an unfinished trace (no trace.json yet): the run stopped or still runs")
    raise AttnvizError(f"{path} holds no trace: give a run directory or its trace/ folder")


def load_baseline(directory: Path) -> dict[int, np.ndarray]:
    from attnviz.metrics import load_baseline as load  # the metrics own the baseline's format

    return load(directory)


def load_trace(path: str | os.PathLike) -> Trace:
    """Reload a trace from a run directory or its ``trace/`` folder; needs no model and loads rows lazily."""
    directory = find_trace_dir(path)
    header = json.loads((directory / HEADER).read_text())
    prompt_len, n_steps = header["prompt_len"], len(header["token_ids"]) - header["prompt_len"]
    if header.get("format") != TRACE_FORMAT:
        raise AttnvizError(
            f"{directory / HEADER} is trace format {header.get('format', 1)}; this attnviz reads format "
            f"{TRACE_FORMAT}: run it again to rebuild the trace"
        )
    dtype, n_heads = header["dtype"], header["n_heads"]
    rows = {ly: open_rows(directory, rows_file(ly), dtype, prompt_len, n_steps) for ly in header["layers"]}
    heads = {ly: open_rows(directory, heads_file(ly), dtype, prompt_len, n_steps, n_heads)
             for ly in header["head_layers"]}
    return Trace(
        token_ids=header["token_ids"],
        token_texts=header["token_texts"],
        token_kinds=header["token_kinds"],
        prompt_len=prompt_len,
        images=[ImageGeometry(**g) for g in header["images"]],
        rows=rows,
        heads=heads,
        mode=header.get("mode", "generate"),
        chat_format=ChatFormat.from_json(header.get("chat_format")),
        baseline=load_baseline(directory),
    )
