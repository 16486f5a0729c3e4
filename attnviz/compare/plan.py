"""The comparison job's bookkeeping: its record (compare.json), the first model's answers, and each sample's
comparison once every model has read it. No model code: this runs after the models are gone.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from attnviz.checks import resolve_layer
from attnviz.data import read_samples
from attnviz.errors import AttnvizError
from attnviz.metadata import COMPLETE
from attnviz.outputs import write_json_atomic
from attnviz.schema import AppConfig, CompareAnswer, to_data
from attnviz.study.selection import StudyItem, plan_items
from attnviz.study.state import SAMPLES_DIR, load_meta
from attnviz.trace import load_trace
from attnviz.video import resolve_codec

if TYPE_CHECKING:
    from attnviz.compare.models import ComparedModel

log = logging.getLogger(__name__)
ANSWER_IDS_KEY = "compare_answer_ids"  # the field a replaying model reads the first model's token ids from
RECORD = "compare.json"
MODELS_DIR = "models"


class CompareFailed(AttnvizError):
    """A model or a sample comparison failed; compare.json lists which and why."""


def answer_ids_of(trace_dir: Path) -> list[int] | None:
    """The answer token ids of a finished trace, None when there is none."""
    try:
        trace = load_trace(trace_dir)
    except Exception:  # a missing or broken trace: that sample failed for the first model
        return None
    return list(trace.token_ids[trace.prompt_len:])


def model_dir(job_dir: Path, model: ComparedModel) -> Path:
    return job_dir / MODELS_DIR / model.label


def describe_matching(models: list[ComparedModel]) -> list[str]:
    """One line per model on how its layers are matched to the reference's (logged and recorded)."""
    ref = models[0]
    lines = []
    for model in models[1:]:
        shown = ", ".join(f"{a}->{b}" for a, b in model.pairs if a != b) or "same indices"
        lines.append(f"{model.label} ({model.num_layers} layers) vs {ref.label} ({ref.num_layers} layers): "
                     f"layers matched by {model.layer_match}" + ("" if model.layer_match == "index" else f" ({shown})"))
    return lines


def write_job_record(job_dir: Path, app: AppConfig, models: list[ComparedModel], apps: list[AppConfig],
                     samples: list[dict[str, Any]] | None) -> dict[str, Any]:
    """``<job>/compare.json``: settings, models with their layers, and (at the end) every sample's state."""
    matching = describe_matching(models)
    if samples is None:
        for line in matching:
            log.info("compare: %s", line)
    data: dict[str, Any] = {
        "format": 1, "kind": "compare", "answer": str(app.compare.answer), "reference": models[0].label,
        "together": app.compare.together, "shard": app.shard, "num_shards": app.num_shards,
        "models": [{"label": m.label, "path": m.model.path, "num_layers": m.num_layers, "layer": a.layer_idx,
                    "layer_match": m.layer_match, "mode": str(a.mode), "dir": f"{MODELS_DIR}/{m.label}"}
                   for m, a in zip(models, apps, strict=True)],
        "layer_matching": matching, "settings": to_data(app.compare), "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }
    if samples is not None:
        data.update(samples=samples, n_samples=len(samples),
                    n_compared=sum(s["status"] == "complete" for s in samples))
    write_json_atomic(job_dir / RECORD, data)
    return data


def missing_models(job_dir: Path, models: list[ComparedModel], item: StudyItem) -> str | None:
    """None when every model completed the sample, else one line naming those that did not."""
    missing = []
    for model in models:
        meta = load_meta(model_dir(job_dir, model) / SAMPLES_DIR / item.name)
        if meta is None or meta.status != COMPLETE:
            why = meta.error if meta is not None and meta.error else "not complete"
            missing.append(f"{model.label}: {why}")
    return "; ".join(missing) or None


def compare_one(app: AppConfig, job_dir: Path, models: list[ComparedModel], item: StudyItem,
                video: Any) -> dict[str, Any]:
    """One sample's comparison -> its entry in the job record (status complete or failed, with one line)."""
    from attnviz.compare.sample import compare_sample

    entry: dict[str, Any] = {"index": item.index, "id": item.id, "name": item.name,
                             "dir": f"{SAMPLES_DIR}/{item.name}"}
    missing = missing_models(job_dir, models, item)
    if missing is not None:
        return {**entry, "status": "failed", "error": f"not compared: {missing}"}
    ref = models[0]
    layer = resolve_layer(int(app.layer_idx), ref.num_layers) if ref.num_layers else int(app.layer_idx)
    try:
        result = compare_sample(
            [model_dir(job_dir, m) / SAMPLES_DIR / item.name for m in models], [m.label for m in models],
            job_dir / SAMPLES_DIR / item.name, answer=str(app.compare.answer), layer=layer, render=app.render,
            video=video if item.video else None, start_phrase=app.start_phrase,
            token_aligned=app.compare.answer != CompareAnswer.each)
    except Exception as err:
        if app.debug:
            raise
        line = str(err).splitlines()[0] if str(err) else type(err).__name__
        return {**entry, "status": "failed", "error": line}
    return {**entry, "status": "complete", "files": result.get("files", {}),
            "js_divergence": {c["model"]: c.get("js_divergence", {}) for c in result.get("comparisons", [])}}


def compare_samples(app: AppConfig, job_dir: Path, models: list[ComparedModel],
                    apps: list[AppConfig]) -> list[dict[str, Any]]:
    """Every sample of the job compared (the job's selection, as each model's study made it)."""
    first = apps[0]
    items = plan_items(read_samples(first.dataset.json), first.samples, first.shard, first.num_shards, app.videos)
    video = replace(app.video, codec=resolve_codec(app.video.codec))
    results = []
    for item in tqdm(items, desc="compare", unit="sample"):
        result = compare_one(app, job_dir, models, item, video)
        if result["status"] != "complete":
            log.error("sample %s: %s", item.id, result["error"])
        results.append(result)
    return results
