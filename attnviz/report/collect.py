"""Find a study's run directories and read their ``metrics.json``; one run's rows as CSV lines; its links.

Reads ``metrics.json`` (and ``metadata.json`` for the rendered layer and file names) only, never a trace, one
run at a time: a caller streams runs and keeps what it needs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import operator
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from attnviz.files import METRICS_NAME, VIEWER_NAME
from attnviz.metadata import RunMetadata

METRICS_FORMAT = 1
COMPARE_NAME = "compare.json"  # a comparison job's record, and each of its samples' (attnviz.compare)
COMPARE_CSV = "compare.csv"  # the report's table of a folder's comparisons
COMPARE_PLOTS = "report_compare_*.png"
ALL = "all"  # the segment of every step of the answer
COORDS = "coords"  # the steps that write a coordinate's numbers (attnviz.metrics)
POSITIONS = tuple(f"pos{i}" for i in range(10))  # tenths of the answer, by relative position
VALUES = ("n_tokens", "image_share", "text_share", "answer_share", "sink_share", "image_share_nosink",
          "image_entropy", "top_share", "gt_share", "hit",
          "relative_top_share", "relative_gt_share", "relative_hit")  # against a generic-prompt baseline, if any
CSV_COLUMNS = ("sample_id", "model", "layer", "segment", *VALUES, "correct", "run_dir")
_VALUE_GETTER = operator.itemgetter(*VALUES)


class UnreadableMetrics(ValueError):
    """A metrics.json that is not one this report reads (broken JSON, wrong shape, another format)."""


@dataclass(frozen=True, eq=False)
class RunMetrics:
    """One run's metrics.json, checked, its rows as columns: row i is ``layers[i]``, ``segments[i]`` and
    ``values[i]`` (one column per name of VALUES, NaN where a value does not apply)."""

    run_dir: str  # relative to the report's folder, with "/" separators ("." for the folder itself)
    sample_id: str
    model: str
    correct: bool | None
    n_tokens: int | None
    layers: list[int]
    segments: list[str]
    values: np.ndarray  # (rows, len(VALUES)) float64

    def fingerprint(self) -> str:
        """Equal for two runs that measured the same thing (a layer sweep re-renders one trace per layer)."""
        digest = hashlib.sha1(self.values.tobytes(), usedforsecurity=False)
        digest.update(json.dumps([self.model, self.sample_id, self.correct, self.layers, self.segments]).encode())
        return digest.hexdigest()

    def column(self, name: str) -> np.ndarray:
        return self.values[:, VALUES.index(name)]

    def row(self, layer: int | None, segment: str = ALL) -> dict[str, Any] | None:
        """One row as {name: value or None}; None when the run has no such row."""
        for i, (at, seg) in enumerate(zip(self.layers, self.segments, strict=True)):
            if at == layer and seg == segment:
                return {name: _plain(name, v) for name, v in zip(VALUES, self.values[i].tolist(), strict=True)}
        return None


def _plain(name: str, value: float) -> float | int | None:
    if math.isnan(value):
        return None
    return int(value) if name == "n_tokens" else value


def walk(root: Path) -> Iterator[tuple[Path, list[str]]]:
    """(folder, its file names) for ``root`` and every folder under it, in sorted order; hidden folders (a sweep's
    ``.traces``, submitit's logs) and symbolic links are not entered."""
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # pruned in place: os.walk skips them
        yield Path(here), files


def find_runs(root: Path) -> Iterator[Path]:
    """Every folder under ``root`` (itself included) holding a metrics.json, in sorted order (see :func:`walk`)."""
    return (here for here, files in walk(root) if METRICS_NAME in files)


def _check_types(values: list[Any], allowed: set[type], what: str) -> None:
    """Type checks over whole columns at C speed (``type``, not ``isinstance``: a bool is no number here)."""
    if set(map(type, values)) - allowed:
        bad = next(v for v in values if type(v) not in allowed)
        raise UnreadableMetrics(f"a row's {what} is {bad!r}")


def _columns(rows: Any) -> tuple[list[int], list[str], np.ndarray]:
    """A metrics.json's rows as (layers, segments, values); values NaN where null, NaN or infinite."""
    if not isinstance(rows, list) or set(map(type, rows)) - {dict}:
        raise UnreadableMetrics("rows is not a list of objects")
    layers, segments = [r.get("layer") for r in rows], [r.get("segment") for r in rows]
    _check_types(layers, {int}, "layer")
    _check_types(segments, {str}, "segment")
    try:  # every key present, as the writer writes them: one C call a row
        table = list(map(_VALUE_GETTER, rows))
    except KeyError:  # a row leaves some out: those values do not apply
        table = [tuple(r.get(name) for name in VALUES) for r in rows]
    _check_types(list(itertools.chain.from_iterable(table)), {int, float, type(None)}, "value")
    values = np.array(table, dtype=np.float64).reshape(len(rows), len(VALUES))  # None -> NaN
    values[~np.isfinite(values)] = np.nan
    return layers, segments, values


def parse_metrics(data: Any, run_dir: str, fallback_id: str = "", fallback_model: str = "") -> RunMetrics:
    """The checked content of one metrics.json (unknown keys ignored); UnreadableMetrics says what is wrong."""
    if not isinstance(data, dict):
        raise UnreadableMetrics("not a JSON object")
    if data.get("format") != METRICS_FORMAT:
        raise UnreadableMetrics(f"format {data.get('format')!r}, this report reads format {METRICS_FORMAT}")
    correct, n_tokens = data.get("correct"), data.get("n_tokens")
    if correct is not None and not isinstance(correct, bool):
        raise UnreadableMetrics(f"correct is {correct!r}, not true, false or null")
    if n_tokens is not None and type(n_tokens) is not int:
        raise UnreadableMetrics(f"n_tokens is {n_tokens!r}, not a whole number")
    sample_id, model = data.get("sample_id"), data.get("model")
    layers, segments, values = _columns(data.get("rows"))
    return RunMetrics(
        run_dir=run_dir,
        sample_id=fallback_id if sample_id is None else str(sample_id),
        model=fallback_model if model is None else str(model),
        correct=correct,
        n_tokens=n_tokens,
        layers=layers,
        segments=segments,
        values=values,
    )


def read_metrics(root: Path, run_dir: Path, meta: RunMetadata | None = None) -> RunMetrics:
    """Read and check ``run_dir/metrics.json``; a missing id or model comes from metadata.json (or the folder)."""
    rel = run_dir.relative_to(root).as_posix()
    try:
        data = json.loads((run_dir / METRICS_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UnreadableMetrics(str(err)) from None
    fallback_id = (meta.sample_id if meta else "") or run_dir.name
    fallback_model = meta.model.path if meta and meta.model else "unknown"
    return parse_metrics(data, rel, fallback_id, fallback_model)


def csv_field(text: str) -> str:
    """One text cell as the csv module writes it (minimal quoting): quoted only when it holds a comma, a quote or a
    line break, quotes doubled."""
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_lines(run: RunMetrics) -> str:
    """The run's rows as CSV text (columns CSV_COLUMNS, "\n" line ends): an empty cell where a value does not
    apply, numbers as Python writes them (round-trip exact), correct as true/false. Built as strings, not through
    csv.writer: half the time, and the report writes hundreds of thousands of lines."""
    head = f"{csv_field(run.sample_id)},{csv_field(run.model)},"
    tail = "," + ("" if run.correct is None else str(run.correct).lower()) + "," + csv_field(run.run_dir) + "\n"
    segments = {seg: csv_field(seg) for seg in set(run.segments)}
    lines = []
    for layer, segment, values in zip(run.layers, run.segments, run.values.tolist(), strict=True):
        tokens = "" if values[0] != values[0] else str(int(values[0]))  # n_tokens (VALUES[0]); v != v: NaN
        rest = ",".join(["" if v != v else repr(v) for v in values[1:]])
        lines.append(f"{head}{layer},{segments[segment]},{tokens},{rest}{tail}")
    return "".join(lines)


def load_metadata(run_dir: Path) -> RunMetadata | None:
    """The run's metadata.json, or None when it has none or it cannot be read (the report then has no links)."""
    try:
        return RunMetadata.load(run_dir)
    except (OSError, ValueError, TypeError, KeyError):  # TypeError, KeyError: a field of the wrong shape
        return None


def href(root: Path, run_dir: Path, name: str | None) -> str | None:
    """A relative link from ``root`` to ``run_dir/name`` when that file exists: percent-encoded and starting with
    "./", so no folder or file name can make it read as another scheme (``javascript:``) or a fragment."""
    if not isinstance(name, str) or not name or not (run_dir / name).is_file():
        return None
    try:
        path = (run_dir / name).relative_to(root).as_posix()
    except ValueError:  # an absolute name elsewhere: no relative link
        return None
    return "./" + quote(path, safe="/")


@dataclass(frozen=True)
class Links:
    layer: int | None  # the layer the run rendered (metadata.json), None when unknown
    viewer: str | None
    video: str | None


def run_links(root: Path, run_dir: Path, meta: RunMetadata | None) -> Links:
    files = meta.files if meta else {}
    return Links(
        layer=meta.layer if meta and isinstance(meta.layer, int) else None,
        viewer=href(root, run_dir, files.get("viewer", VIEWER_NAME)),
        video=href(root, run_dir, files.get("video")),
    )
