"""A comparison job: every listed checkpoint reads the job's samples, one model in memory at a time, then each
sample's comparison (attnviz.compare.sample) and the report.

    python run.py compare=demo                       # or compare.models=[base,/ckpt/sft,/ckpt/rl] samples=all

``<job>/models/<label>/`` is an ordinary study job of that model (resumable, sharded as any study);
``<job>/samples/<name>/`` holds the sample's compare.json, compare.html and compare_layer{L}.mp4; ``<job>/compare.json``
the settings and every sample's state; the report (report.html, metrics.csv, compare.csv) is written into ``<job>``.
"""

from __future__ import annotations

import gc
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from attnviz.checks import resolve_layer
from attnviz.compare.index import write_index
from attnviz.compare.models import ComparedModel, compared_models, mapped_layers
from attnviz.compare.plan import (
    ANSWER_IDS_KEY,
    CompareFailed,
    answer_ids_of,
    compare_samples,
    model_dir,
    write_job_record,
)
from attnviz.compare.sweep import write_pooled_report
from attnviz.errors import AttnvizError
from attnviz.files import TRACE_DIR
from attnviz.schema import AppConfig, CompareAnswer, CompareConfig, Mode
from attnviz.study.runner import Study, StudyFailed, run_study
from attnviz.study.state import SAMPLES_DIR

log = logging.getLogger(__name__)


def depth_of(path: str) -> int | None:
    from attnviz.models.checkpoint import declared_num_layers

    return declared_num_layers(path)


def model_app(app: AppConfig, model: ComparedModel, reference: ComparedModel, first: bool) -> AppConfig:
    """The study settings one compared model runs with: its checkpoint, its layers, the comparison's answer."""
    answer = app.compare.answer
    ref_layer = resolve_layer(int(app.layer_idx), reference.num_layers) if reference.num_layers else app.layer_idx
    mode = Mode.generate if answer == CompareAnswer.each or (answer == CompareAnswer.first and first) else Mode.replay
    replay_key = ANSWER_IDS_KEY if answer == CompareAnswer.first and not first else app.capture.replay_key
    capture = replace(app.capture, replay_key=replay_key,
                      layers=mapped_layers(app.capture.layers, model, reference, ref_layer))
    metrics = replace(app.metrics, layers=mapped_layers(app.metrics.layers, model, reference, ref_layer))
    samples = app.samples if app.samples is not None else [app.sample_idx]
    return replace(app, model=model.model, mode=mode, layer_idx=model.layer_of(ref_layer), capture=capture,
                   metrics=metrics, samples=samples, compare=CompareConfig(),
                   videos=app.videos if app.compare.model_videos else "none")


def check_tokenizers(models: list[ComparedModel]) -> None:
    """Token-aligned answers need one vocabulary: refuse, naming the models, before any model loads."""
    from transformers import AutoTokenizer

    def vocab(model: ComparedModel) -> tuple[dict[str, int], tuple[str, ...]]:
        tok = AutoTokenizer.from_pretrained(model.model.path, trust_remote_code=model.model.trust_remote_code)
        return tok.get_vocab(), tuple(tok.all_special_tokens)

    reference = vocab(models[0])
    for model in models[1:]:
        if vocab(model) != reference:
            raise AttnvizError(
                f"compare.answer needs one tokenizer, but models {models[0].label!r} and {model.label!r} tokenise "
                "differently; use compare.answer=each (each model's own answer, aggregates compared)"
            )


def free_memory() -> None:
    """Drop the model just used before the next loads (never two in memory)."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def with_answers(study: Study, answers: dict[int, list[int]] | None) -> Study:
    """The first model's token ids put into the samples a later model replays (``answers``: sample index -> ids)."""
    for index, ids in (answers or {}).items():
        if isinstance(study.raw[index], dict):
            study.raw[index] = {**study.raw[index], ANSWER_IDS_KEY: ids}
    return study


def run_model(app: AppConfig, job_dir: Path, model: ComparedModel, answers: dict[int, list[int]] | None) -> Study:
    """One model's study; ``answers`` (sample index -> the first model's token ids) are what it replays."""
    study = with_answers(Study(app, model_dir(job_dir, model)), answers)
    log.info("compare: %s (%s), layer %s", model.label, model.model.path, app.layer_idx)
    try:
        run_study(app, study.job_dir, study)
    except StudyFailed as err:  # its failed samples are listed; the others are still compared
        log.error("compare: %s: %s", model.label, err)
    finally:
        free_memory()
    return study


def first_answers(job_dir: Path, model: ComparedModel, study: Study) -> dict[int, list[int]]:
    """The reference's generated token ids per sample index (samples it failed are left out)."""
    found = {}
    for item in study.items:
        ids = answer_ids_of(model_dir(job_dir, model) / SAMPLES_DIR / item.name / TRACE_DIR)
        if ids is not None:
            found[item.index] = ids
    return found


def run_compare(app: AppConfig, job_dir: Path) -> dict[str, Any]:
    """Run (or resume) a comparison job into ``job_dir``; returns the job's compare.json data. Raises
    CompareFailed when a model or a sample comparison failed (after everything else was done)."""
    models = compared_models(list(app.compare.models), app.model, app.layer_idx, depth_of)
    if app.compare.answer != CompareAnswer.each:
        check_tokenizers(models)
    reference = models[0]
    apps = [model_app(app, m, reference, i == 0) for i, m in enumerate(models)]
    write_job_record(job_dir, app, models, apps, samples=None)
    if app.compare.together:
        from attnviz.compare.together import run_together

        run_together(apps, job_dir, models)
    else:
        answers = None
        for i, (model, model_cfg) in enumerate(zip(models, apps, strict=True)):
            study = run_model(model_cfg, job_dir, model, answers)
            if i == 0 and app.compare.answer == CompareAnswer.first:
                answers = first_answers(job_dir, model, study)
    return finish(app, job_dir, models, apps)


def finish(app: AppConfig, job_dir: Path, models: list[ComparedModel], apps: list[AppConfig]) -> dict[str, Any]:
    """Every sample's comparison, the job record, the report; CompareFailed when anything failed."""
    results = compare_samples(app, job_dir, models, apps)
    data = write_job_record(job_dir, app, models, apps, samples=results)
    write_index(job_dir, data)
    write_compare_report(job_dir, app)
    failed = [r for r in results if r["status"] != "complete"]
    log.info("compare: %d of %d samples compared; %s", len(results) - len(failed), len(results),
             job_dir / "report.html")
    if failed:
        raise CompareFailed(f"{len(failed)} of {len(results)} samples were not compared "
                            f"(first: {failed[0]['id']}: {failed[0]['error']}); see {job_dir / 'compare.json'}")
    return data


def write_compare_report(job_dir: Path, app: AppConfig) -> None:
    if app.metrics.enabled:
        write_pooled_report(job_dir)
