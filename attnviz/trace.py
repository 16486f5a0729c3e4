"""The trace: everything a render needs, with no model attached.

A trace is the generated sequence (token ids, their text and kind), the geometry of every image's tokens and,
per captured decoder layer, the head-averaged attention rows that *produced* each generated token.

Row semantics (used everywhere in attnviz): ``rows[layer][t]`` is the softmax attention of the query at position
``prompt_len - 1 + t`` over keys ``0 .. prompt_len + t - 1`` (zeros after). That query's output is the logits
that chose generated token ``t``, so row ``t`` is "what the model looked at when it wrote token t". For ``t == 0``
it is the prompt's last position (the prefill step).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

TOKEN_KINDS = ("text", "image", "special")
TRACE_FORMAT = 1


@dataclass(frozen=True)
class ImageGeometry:
    """Where one image's tokens sit in the sequence and how they tile the image.

    By default the image's cells are ``grid_h * grid_w`` consecutive tokens from ``token_start``, raster order
    (Qwen2-VL, LLaVA-1.5). Families whose cell tokens are interleaved with other image tokens (LLaVA-NeXT /
    OneVision: a base tile first, a newline token after each row of the stitched tile grid) list the sequence
    position of every cell in ``cell_positions`` (raster order, -1 for a cell without a token). ``view_box``
    is the part of the caller's image the grid covers, (left, top, right, bottom) in its pixels (LLaVA-1.5's
    centre crop); None means the whole image.
    """

    index: int  # image number in the prompt, 0-based
    token_start: int  # sequence position of the image's first image token
    grid_h: int  # merged-patch rows (tokens per column)
    grid_w: int  # merged-patch columns (tokens per row)
    pixel_h: int  # height of the image the model saw (after the processor's resize)
    pixel_w: int  # width of the image the model saw
    cell_positions: tuple[int, ...] | None = None  # (grid_h * grid_w,) explicit positions, -1 = no token
    view_box: tuple[float, float, float, float] | None = None  # grid's region of the caller's image, in pixels

    def __post_init__(self) -> None:  # JSON gives lists back: keep the dataclass hashable
        if self.cell_positions is not None:
            object.__setattr__(self, "cell_positions", tuple(int(p) for p in self.cell_positions))
            if len(self.cell_positions) != self.grid_h * self.grid_w:
                raise ValueError(f"{len(self.cell_positions)} cell positions for a {self.grid_h}x{self.grid_w} grid")
        if self.view_box is not None:
            object.__setattr__(self, "view_box", tuple(float(v) for v in self.view_box))

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
    token_ids: list[int]  # (S,) prompt followed by generated tokens
    token_texts: list[str]  # (S,) decoded text of each token
    token_kinds: list[str]  # (S,) one of TOKEN_KINDS
    prompt_len: int
    images: list[ImageGeometry] = field(default_factory=list)
    rows: dict[int, np.ndarray] = field(default_factory=dict)  # layer -> (T, S - 1) float, see module doc

    @property
    def n_steps(self) -> int:
        """Number of generated tokens T (one frame each)."""
        return len(self.token_ids) - self.prompt_len

    @property
    def layers(self) -> list[int]:
        return sorted(self.rows)

    def row(self, layer: int, step: int) -> np.ndarray:
        """(prompt_len + step,) float32 attention that produced generated token ``step``."""
        return np.asarray(self.rows[layer][step, : self.prompt_len + step], dtype=np.float32)

    def generated_text(self) -> str:
        return "".join(self.token_texts[self.prompt_len :])


def save_trace(trace: Trace, directory: str | os.PathLike, dtype: str = "float32") -> Path:
    """Write ``trace.json`` + ``layer_XXX.npy`` (rows as ``dtype``) into ``directory``, each via temp name + rename."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if dtype not in ("float16", "float32"):
        raise ValueError(f"trace storage dtype must be float16 or float32, not {dtype!r}")
    for layer, rows in trace.rows.items():
        stored = np.asarray(rows, dtype=dtype)
        atomic_write(directory / f"layer_{layer:03d}.npy", lambda f, r=stored: np.save(f, r))
    header = {
        "format": TRACE_FORMAT,
        "token_ids": trace.token_ids,
        "token_texts": trace.token_texts,
        "token_kinds": trace.token_kinds,
        "prompt_len": trace.prompt_len,
        "images": [asdict(g) for g in trace.images],
        "layers": trace.layers,
    }
    atomic_write(directory / "trace.json", lambda f: f.write(json.dumps(header).encode()))
    return directory


def load_trace(directory: str | os.PathLike) -> Trace:
    """Reload a trace written by :func:`save_trace`; needs no model."""
    directory = Path(directory)
    header = json.loads((directory / "trace.json").read_text())
    rows = {int(layer): np.load(directory / f"layer_{int(layer):03d}.npy") for layer in header["layers"]}
    return Trace(
        token_ids=header["token_ids"],
        token_texts=header["token_texts"],
        token_kinds=header["token_kinds"],
        prompt_len=header["prompt_len"],
        images=[ImageGeometry(**g) for g in header["images"]],
        rows=rows,
    )


def atomic_write(path: Path, write) -> None:
    """Call ``write(file)`` on a hidden temp name beside ``path``, then rename: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)
