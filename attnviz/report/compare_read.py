"""The comparison jobs under a report's folder (:mod:`attnviz.compare`): each sample's ``compare.json``, checked, the
job record it belongs to, and the metrics.json of the runs it compares. Reads JSON only, one sample at a time.

A job's layout: ``<job>/compare.json`` (kind ``compare``: answer, reference, models), ``<job>/samples/<name>/
compare.json`` (kind ``compare_sample``: per compared model its layer pairs, JS divergence and metric deltas), and
the runs under ``<job>/models/<label>/``, which each sample names by a path relative to its folder.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnviz.report.collect import COMPARE_NAME, METRICS_NAME, RunMetrics, UnreadableMetrics, parse_metrics

JOB_KIND, SAMPLE_KIND = "compare", "compare_sample"
COMPARE_FORMAT = 1


class UnreadableCompare(ValueError):
    """A per-sample compare.json this report does not read (broken JSON, wrong shape, another format)."""


@dataclass(frozen=True)
class JobKey:
    """What samples must share to be pooled: the shards of one comparison (the same models, the same answers)."""

    answer: str
    reference: str
    labels: tuple[str, ...]  # the reference first
    paths: tuple[str | None, ...]  # each model's checkpoint (from the job record; None without one)


@dataclass(frozen=True)
class Job:
    key: JobKey
    layer: int | None  # the reference's layer of the job (its videos'), None when unknown
    folder: Path | None  # the folder of the job record, None without one


@dataclass(frozen=True)
class Pairing:
    """One compared model against the reference, in one sample: reference layer -> ..."""

    model: str
    layer_match: str
    pairs: dict[int, int]  # -> the model's layer
    js: dict[int, float]  # -> JS divergence (bits), only where there is one
    deltas: dict[int, dict[str, dict[str, float | None]]]  # -> segment -> metric -> model − reference


@dataclass(frozen=True)
class SampleCompare:
    folder: Path
    sample_id: str
    answer: str
    reference: str
    labels: tuple[str, ...]  # the reference first
    run_dirs: dict[str, Path]  # label -> its run folder
    correct: dict[str, bool | None]
    pairings: list[Pairing]
    viewer: str | None  # compare.html's name in ``folder``
    videos: dict[int, str]  # reference layer -> the video's name in ``folder``


def _number(value: Any) -> float | None:
    if type(value) not in (int, float) or not math.isfinite(value):
        return None
    return float(value)


def _layer_map(data: Any, what: str, convert) -> dict[int, Any]:
    """A JSON object keyed by layer numbers ("3") -> {3: convert(value)}."""
    if not isinstance(data, dict):
        raise UnreadableCompare(f"{what} is not an object")
    try:
        return {int(k): convert(v) for k, v in data.items()}
    except ValueError:
        raise UnreadableCompare(f"{what} has a key that is not a layer number") from None


def _deltas(data: Any) -> dict[int, dict[str, dict[str, float | None]]]:
    def segments(value: Any) -> dict[str, dict[str, float | None]]:
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise UnreadableCompare("deltas is not layer -> segment -> metric -> number")
        return {str(seg): {str(k): _number(x) for k, x in metrics.items()} for seg, metrics in value.items()}

    return _layer_map(data, "deltas", segments)


def _pairing(data: Any) -> Pairing:
    if not isinstance(data, dict) or not isinstance(data.get("model"), str):
        raise UnreadableCompare("a comparison names no model")
    pairs = data.get("layers")
    if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 and all(type(x) is int for x in p)
                                              for p in pairs):
        raise UnreadableCompare(f"layers of {data['model']!r} is not a list of [reference layer, model layer]")
    js = {k: v for k, v in _layer_map(data.get("js_divergence", {}), "js_divergence", _number).items()
          if v is not None}
    return Pairing(data["model"], str(data.get("layer_match", "")), dict(map(tuple, pairs)), js,
                   _deltas(data.get("deltas", {})))


def _files(data: Any) -> tuple[str | None, dict[int, str]]:
    files = data if isinstance(data, dict) else {}
    viewer = files.get("viewer") if isinstance(files.get("viewer"), str) else None
    videos = files.get("videos") if isinstance(files.get("videos"), dict) else {}
    return viewer, {layer: name for layer, name in _layer_map(videos, "files.videos", lambda v: v).items()
                    if isinstance(name, str)}


def parse_sample(data: Any, folder: Path) -> SampleCompare:
    """The checked content of one sample's compare.json; UnreadableCompare says what is wrong."""
    if not isinstance(data, dict) or data.get("kind") != SAMPLE_KIND:
        raise UnreadableCompare(f"not a sample's comparison (kind {SAMPLE_KIND!r})")
    if data.get("format") != COMPARE_FORMAT:
        raise UnreadableCompare(f"format {data.get('format')!r}, this report reads format {COMPARE_FORMAT}")
    models = data.get("models")
    if not isinstance(models, list) or not models or not all(
            isinstance(m, dict) and isinstance(m.get("label"), str) and isinstance(m.get("run_dir"), str)
            for m in models):
        raise UnreadableCompare("models is not a list of {label, run_dir}")
    comparisons = data.get("comparisons")
    if not isinstance(comparisons, list):
        raise UnreadableCompare("comparisons is not a list")
    labels = tuple(m["label"] for m in models)
    reference = data.get("reference", labels[0])
    if reference != labels[0] or len(set(labels)) != len(labels):
        raise UnreadableCompare("the reference is not the first of distinct models")
    viewer, videos = _files(data.get("files"))
    return SampleCompare(
        folder=folder, sample_id=str(data.get("sample_id", folder.name)), answer=str(data.get("answer", "")),
        reference=reference, labels=labels,
        run_dirs={m["label"]: Path(os.path.normpath(folder / m["run_dir"])) for m in models},
        correct={m["label"]: m.get("correct") if isinstance(m.get("correct"), bool) else None for m in models},
        pairings=[_pairing(c) for c in comparisons], viewer=viewer, videos=videos)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UnreadableCompare(str(err)) from None


def job_record(path: Path) -> Job | None:
    """A job-level compare.json (kind ``compare``) as a Job; None when ``path`` holds none that is readable."""
    try:
        data = read_json(path)
    except UnreadableCompare:
        return None
    models = data.get("models") if isinstance(data, dict) and data.get("kind") == JOB_KIND else None
    if not isinstance(models, list) or not models or not all(isinstance(m, dict) for m in models):
        return None
    labels = tuple(str(m.get("label")) for m in models)
    paths = tuple(m.get("path") if isinstance(m.get("path"), str) else None for m in models)
    layer = models[0].get("layer")
    key = JobKey(str(data.get("answer", "")), str(data.get("reference", labels[0])), labels, paths)
    return Job(key, layer if type(layer) is int else None, path.parent)


class Jobs:
    """The job record a sample belongs to: the nearest folder above it (up to the report's folder) that holds a
    job-level compare.json; each record read once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._seen: dict[Path, Job | None] = {}

    def of(self, sample: SampleCompare) -> Job:
        for folder in sample.folder.parents:
            if not folder.is_relative_to(self.root):
                break
            if folder not in self._seen:
                path = folder / COMPARE_NAME
                self._seen[folder] = job_record(path) if path.is_file() else None
            if self._seen[folder] is not None:
                return self._seen[folder]
        key = JobKey(sample.answer, sample.reference, sample.labels, (None,) * len(sample.labels))
        return Job(key, min(sample.videos, default=None), None)


def belongs(sample: SampleCompare, job: Job) -> bool:
    """Whether the sample was compared as its job record says (a stale file from another comparison is not)."""
    return job.key.labels == sample.labels and job.key.answer == sample.answer


def run_metrics(run_dir: Path) -> RunMetrics | None:
    """The run's metrics.json, checked; None when it has none or it cannot be read (its means stay empty)."""
    try:
        data = json.loads((run_dir / METRICS_NAME).read_text(encoding="utf-8"))
        return parse_metrics(data, run_dir.name)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, UnreadableMetrics):
        return None
