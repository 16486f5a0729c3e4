"""On-disk rows of a trace: ragged, appended step by step while the model runs, published atomically.

Layout of a trace folder (format 2)::

    trace.json          header (tokens, geometry, layers, dtype); written last: its presence means complete
    layer_003.rows      head-averaged rows of layer 3, row t = prompt_len + t values, rows back to back
    layer_003.heads     per-head rows of layer 3 (if captured), step t = (H, prompt_len + t) values

Row ``t`` starts at value ``t·prompt_len + t·(t-1)/2`` (times H for heads), so no index is stored. While the
model runs the files carry a ``.part`` suffix; :meth:`TraceWriter.finish` renames them and writes ``trace.json``
last, so a reader never takes a half-written trace for a complete one. No torch here: traces load without it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from attnviz.analysis import row_offset
from attnviz.files import TRACE_HEADER as HEADER
from attnviz.files import heads_file, rows_file

TRACE_FORMAT = 2


def atomic_write(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Call ``write(file)`` on a hidden temp name beside ``path``, then rename: readers never see half a file, and a
    failed write leaves neither the file nor its temp behind."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def json_text(payload: Any, **kwargs: Any) -> str:
    """``json.dumps(payload, ensure_ascii=False)`` whose text always encodes as UTF-8: a lone surrogate (a broken
    token's text) becomes its ``\\uXXXX`` escape, which every JSON reader turns back into the same string."""
    text = json.dumps(payload, ensure_ascii=False, **kwargs)
    return LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class RaggedRows:
    """Rows of growing length, read lazily from one flat (memory-mapped) array.

    ``rows[t]`` is row t, (prompt_len + t,) — or (H, prompt_len + t) for per-head rows; ``rows[t, :n]`` slices it;
    ``np.asarray(rows)`` gives the zero-padded dense (T, S - 1) (or (T, H, S - 1)) array.
    """

    def __init__(self, data: np.ndarray, prompt_len: int, n_steps: int, n_heads: int | None = None):
        per = n_heads or 1
        expected = per * row_offset(n_steps, prompt_len)
        if data.size != expected:
            raise ValueError(f"{data.size} stored values, expected {expected} for {n_steps} rows")
        self.data, self.prompt_len, self.n_steps, self.n_heads = data, prompt_len, n_steps, n_heads

    def __len__(self) -> int:
        return self.n_steps

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    @property
    def shape(self) -> tuple[int, ...]:
        width = self.prompt_len + self.n_steps - 1
        return (self.n_steps, width) if self.n_heads is None else (self.n_steps, self.n_heads, width)

    def __getitem__(self, key):
        if isinstance(key, tuple):
            return self[key[0]][key[1:]]
        if isinstance(key, slice):
            return np.asarray(self)[key]
        step = int(key) + (self.n_steps if int(key) < 0 else 0)
        if not 0 <= step < self.n_steps:
            raise IndexError(f"step {key} out of range for {self.n_steps} rows")
        per = self.n_heads or 1
        length = self.prompt_len + step
        flat = self.data[per * row_offset(step, self.prompt_len) :][: per * length]
        return flat if self.n_heads is None else flat.reshape(self.n_heads, length)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.zeros(self.shape, dtype=dtype or self.dtype)
        for step in range(self.n_steps):
            out[step, ..., : self.prompt_len + step] = self[step]
        return out


class TraceWriter:
    """A row sink that appends each step's row to ``.part`` files; :meth:`finish` publishes the trace."""

    def __init__(self, directory: str | os.PathLike, layers, head_layers=(), dtype: str = "float16"):
        if dtype not in ("float16", "float32"):
            raise ValueError(f"trace storage dtype must be float16 or float32, not {dtype!r}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        # An older trace here stops being complete the moment a new one starts.
        for stale in [HEADER, *(p.name for p in self.directory.glob("layer_*"))]:
            (self.directory / stale).unlink(missing_ok=True)
        self.dtype = dtype
        self.layers, self.head_layers = sorted(set(layers)), sorted(set(head_layers))
        self.n_rows = dict.fromkeys(self.layers, 0)
        self.n_heads: int | None = None
        self.prompt_len: int | None = None
        # Kept open for the whole run (one append per step); closed by finish() or abort().
        self._files = {name: open(self._part(name), "wb") for name in self._names()}  # noqa: SIM115

    def _names(self) -> list[str]:
        return [rows_file(layer) for layer in self.layers] + [heads_file(layer) for layer in self.head_layers]

    def _part(self, name: str) -> Path:
        return self.directory / f".{name}.part"

    def write(self, layer: int, step: int, row: np.ndarray, heads: np.ndarray | None) -> None:
        """row (B, K) and heads (B, H, K): batch element 0 is kept; K must be prompt_len + step."""
        if self.prompt_len is None:
            self.prompt_len = row.shape[-1] - step
        if step != self.n_rows[layer] or row.shape[-1] != self.prompt_len + step:
            raise RuntimeError(f"layer {layer}: got a {row.shape[-1]}-key row for step {step} out of order")
        self._files[rows_file(layer)].write(np.ascontiguousarray(row[0], dtype=self.dtype).tobytes())
        if heads is not None:
            self.n_heads = heads.shape[1]
            self._files[heads_file(layer)].write(np.ascontiguousarray(heads[0], dtype=self.dtype).tobytes())
        self.n_rows[layer] += 1

    def kept_bytes(self) -> int:
        return sum(f.tell() for f in self._files.values())

    def finish(self, header: dict[str, Any]) -> Path:
        """Close and rename the row files, then write trace.json (last) with ``header`` plus the storage facts."""
        counts = set(self.n_rows.values())
        if len(counts) > 1:
            raise RuntimeError(f"layers hold different row counts: {self.n_rows}")
        for name, f in self._files.items():
            f.close()
            os.replace(self._part(name), self.directory / name)
        storage = {
            "format": TRACE_FORMAT,
            "dtype": self.dtype,
            "layers": self.layers,
            "head_layers": self.head_layers,
            "n_heads": self.n_heads,
            "n_rows": counts.pop() if counts else 0,
        }
        text = json.dumps({**header, **storage})
        atomic_write(self.directory / HEADER, lambda f: f.write(text.encode()))
        return self.directory

    def abort(self) -> None:
        for name, f in self._files.items():
            f.close()
            self._part(name).unlink(missing_ok=True)


def open_rows(directory: Path, name: str, dtype: str, prompt_len: int, n_steps: int, n_heads=None) -> RaggedRows:
    path = directory / name
    data = np.zeros(0, dtype=dtype) if path.stat().st_size == 0 else np.memmap(path, dtype=dtype, mode="r")
    return RaggedRows(data, prompt_len, n_steps, n_heads)
