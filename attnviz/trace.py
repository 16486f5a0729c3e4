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

TOKEN_KINDS = ("text", "image", "special")
TRACE_FORMAT = 1


@dataclass(frozen=True)
class ImageGeometry:
    """Where one image's tokens sit in the sequence and how they tile the image."""

    index: int  # image number in the prompt, 0-based
    token_start: int  # sequence position of the image's first image token
    grid_h: int  # merged-patch rows (tokens per column)
    grid_w: int  # merged-patch columns (tokens per row)
    pixel_h: int  # height of the image the model saw (after the processor's resize)
    pixel_w: int  # width of the image the model saw

    @property
    def n_tokens(self) -> int:
        return self.grid_h * self.grid_w

    @property
    def positions(self) -> range:
        return range(self.token_start, self.token_start + self.n_tokens)

    def cell_weights(self, row: np.ndarray) -> np.ndarray:
        """(S,) attention row -> (grid_h, grid_w) weights of this image's cells, raster order."""
        return np.asarray(row[self.token_start : self.token_start + self.n_tokens]).reshape(
            self.grid_h, self.grid_w
        )


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
