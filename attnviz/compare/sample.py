"""One sample read by several checkpoints -> ``compare.json``, ``compare.html`` and ``compare_layer{L}.mp4``.

Each model's run directory is an ordinary finished run of the sample (trace, metadata.json, metrics.json, input
images). The first label is the reference. Token-aligned runs (every model read the same answer tokens) get the
JS divergence per layer, the comparison video and page; otherwise (each model wrote its own answer) only the
metric deltas are compared. The calculations are :mod:`attnviz.comparison`'s.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnviz.compare.page import PageModel, build_compare_payload, write_compare_page
from attnviz.compare.video import Model, write_compare_video
from attnviz.comparison import check_aligned, compare_keys, js_by_layer, layer_pairs, metric_deltas
from attnviz.errors import AttnvizError
from attnviz.files import METRICS_NAME, TRACE_DIR
from attnviz.metadata import RunMetadata
from attnviz.outputs import write_json_atomic
from attnviz.render import find_text_start
from attnviz.rerender import ground_truth_of, load_inputs
from attnviz.schema import RenderConfig, VideoConfig
from attnviz.trace import Trace, load_trace

log = logging.getLogger(__name__)

COMPARE_JSON = "compare.json"
FORMAT = 1


@dataclass(frozen=True)
class Run:
    """One model's finished run of the sample."""

    label: str
    run_dir: Path
    meta: RunMetadata
    trace: Trace
    metrics: dict[str, Any]  # metrics.json ({} when the run has none)

    @property
    def num_layers(self) -> int:
        return self.meta.model.num_layers if self.meta.model else max(self.trace.layers, default=0) + 1


def load_run(run_dir: Path, label: str) -> Run:
    """A finished run directory, or one line naming the model and what is missing."""
    try:
        meta = RunMetadata.load(run_dir)
    except (OSError, ValueError):
        raise AttnvizError(f"model {label!r}: {run_dir} holds no finished run (no readable metadata.json)") from None
    if not meta.complete:
        raise AttnvizError(f"model {label!r}: the run in {run_dir} is not complete (status {meta.status!r})")
    metrics_path = run_dir / METRICS_NAME
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else {}
    return Run(label, run_dir, meta, load_trace(run_dir), metrics)


def _check_inputs(run_dirs: list[Path], labels: list[str]) -> None:
    if len(run_dirs) != len(labels) or len(labels) < 2:
        raise AttnvizError(f"a comparison needs 2 or more runs, one label each ({len(run_dirs)} runs, "
                           f"{len(labels)} labels)")
    if len(set(labels)) != len(labels):
        raise AttnvizError(f"compared models need distinct labels, got {labels}")


def _check_same_sample(runs: list[Run]) -> None:
    ref = runs[0]
    for run in runs[1:]:
        if run.meta.sample_id != ref.meta.sample_id:
            raise AttnvizError(f"models {ref.label!r} and {run.label!r} ran different samples "
                               f"({ref.meta.sample_id!r} vs {run.meta.sample_id!r})")


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()


def comparison_entry(ref: Run, run: Run, token_aligned: bool) -> dict[str, Any]:
    """``run`` against the reference: layer matching, JS divergence per layer, metric deltas."""
    match, pairs = layer_pairs(ref.num_layers, run.num_layers)
    if token_aligned:
        check_aligned(ref.trace, run.trace, ref.label, run.label)
    js = js_by_layer(ref.trace, run.trace, pairs) if token_aligned else {}
    deltas = metric_deltas(ref.metrics, run.metrics, pairs)
    return {"model": run.label, "layer_match": match, "layers": [list(p) for p in pairs],
            "js_divergence": {str(k): v for k, v in js.items()},
            "deltas": {str(k): v for k, v in deltas.items()}}


def video_models(runs: list[Run], comparisons: list[dict[str, Any]], layer: int) -> list[Model]:
    """The bands of the video of reference layer ``layer``; one line when a model lacks the rows."""
    matched = [layer] + [dict(map(tuple, c["layers"])).get(layer, layer) for c in comparisons]
    for run, own in zip(runs, matched, strict=True):
        if own not in run.trace.rows:
            raise AttnvizError(
                f"compare video of layer {layer}: model {run.label!r} holds no rows of its layer {own} "
                f"(stored: {run.trace.layers}); capture it (capture.layers) or choose another layer_idx")
    return [Model(r.trace, r.label, own, r.meta.correct) for r, own in zip(runs, matched, strict=True)]


def aligned_outputs(runs: list[Run], comparisons: list[dict[str, Any]], out_dir: Path, *, layer: int,
                    render: RenderConfig, video: VideoConfig | None, start_phrase: str) -> dict[str, Any]:
    """The video (unless ``video`` is None) and the page of token-aligned runs -> compare.json's "files"."""
    ref = runs[0]
    text_start, found = find_text_start(ref.trace, start_phrase)
    if not found:
        log.info("start_phrase %r not found; the text panels start at the last assistant turn", start_phrase)
    keys = compare_keys(ref.trace, text_start, render.exclude, render.exclude_positions)
    images = load_inputs(ref.run_dir / TRACE_DIR, len(ref.trace.images))
    files: dict[str, Any] = {"viewer": None, "videos": {}}
    if video is not None:
        path = write_compare_video(video_models(runs, comparisons, layer), keys, images, render, video, out_dir,
                                   sample_id=ref.meta.sample_id, ground_truth=ground_truth_of(ref.meta.sample, render))
        files["videos"][str(layer)] = path.name
    models = [PageModel(ref.trace, ref.label, ref.meta.correct, {a: a for a in ref.trace.layers})]
    models += [PageModel(r.trace, r.label, r.meta.correct, dict(map(tuple, c["layers"])))
               for r, c in zip(runs[1:], comparisons, strict=True)]
    payload = build_compare_payload(models, keys, images, render, sample_id=ref.meta.sample_id,
                                    text_start=text_start, layer=layer)
    if payload["layers"]:
        files["viewer"] = write_compare_page(payload, out_dir).name
    else:
        log.warning("compare page of sample %s: no layer is stored by every model", ref.meta.sample_id)
    return files


def compare_sample(
    run_dirs: list[Path], labels: list[str], out_dir: Path, *, answer: str, layer: int, render: RenderConfig,
    video: VideoConfig | None, start_phrase: str, token_aligned: bool,
) -> dict[str, Any]:
    """Compare one sample's runs (``labels[0]``: the reference) into ``out_dir``; returns compare.json's data.

    ``layer``: the reference's layer of the video; ``video`` None: no MP4; ``token_aligned`` False: only the metric
    deltas (no JS divergence, video or page).
    """
    _check_inputs(run_dirs, labels)
    runs = [load_run(Path(d), label) for d, label in zip(run_dirs, labels, strict=True)]
    _check_same_sample(runs)
    ref = runs[0]
    comparisons = [comparison_entry(ref, run, token_aligned) for run in runs[1:]]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {"viewer": None, "videos": {}}
    if token_aligned:
        files = aligned_outputs(runs, comparisons, out_dir, layer=layer, render=render, video=video,
                                start_phrase=start_phrase)
    data = {
        "format": FORMAT, "kind": "compare_sample", "sample_id": ref.meta.sample_id, "answer": str(answer),
        "token_aligned": bool(token_aligned), "reference": ref.label,
        "models": [{"label": r.label, "run_dir": _relative(r.run_dir, out_dir), "num_layers": r.num_layers,
                    "correct": r.meta.correct} for r in runs],
        "comparisons": comparisons,
        "files": files,
    }
    write_json_atomic(out_dir / COMPARE_JSON, data)
    return data
