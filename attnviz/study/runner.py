"""A study job: many samples, the model loaded once, rendering in a pool of worker processes, resumable.

    python run.py samples=all batch_size=8 output_dir=studies/bench     # or shard=i num_shards=n in a multirun

``<job dir>/samples/<name>/`` holds exactly what a single run writes; ``study.json`` and ``index.html`` list every
sample. Samples already complete are skipped, a finished trace whose rendering stopped is rendered again without
the model, and a sample that fails is recorded with its one-line error while the others go on; the job fails
(:class:`StudyFailed`) when any sample failed. The model's code is imported only when a sample needs generating.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from attnviz.checks import check_layers, resolve_layers
from attnviz.data import read_samples
from attnviz.errors import AttnvizError
from attnviz.metadata import COMPLETE, FAILED
from attnviz.rerender import metrics_plan
from attnviz.schema import AppConfig, to_data
from attnviz.study.index import RUNNING, StudyIndex
from attnviz.study.pool import RenderPool, worker_count
from attnviz.study.render import RenderResult, RenderTask
from attnviz.study.selection import StudyItem, plan_items
from attnviz.study.state import DONE, GENERATE, SAMPLES_DIR, inspect_sample, record_failure, write_pending
from attnviz.video import resolve_codec

log = logging.getLogger(__name__)


class StudyFailed(AttnvizError):
    """Some samples failed; study.json and index.html list them with their errors."""


def study_settings(app: AppConfig, workers: int) -> dict[str, Any]:
    return {"samples": app.samples, "shard": app.shard, "num_shards": app.num_shards, "batch_size": app.batch_size,
            "render_workers": workers, "videos": app.videos, "model": app.model.path, "dataset": app.dataset.json,
            "slurm_job_id": os.environ.get("SLURM_JOB_ID")}


class Study:
    """One study job while it runs: its plan, index, render pool and progress bar."""

    def __init__(self, app: AppConfig, job_dir: Path):
        if app.batch_size < 1:
            raise AttnvizError(f"batch_size={app.batch_size}: give 1 or more")
        self.app, self.job_dir = app, job_dir
        self.raw = read_samples(app.dataset.json)
        self.items = plan_items(self.raw, app.samples, app.shard, app.num_shards, app.videos)
        self.workers = worker_count(app.render_workers)
        self.video = replace(app.video, codec=resolve_codec(app.video.codec))  # auto: probed once, here
        self.index = StudyIndex(job_dir, study_settings(app, self.workers), self.items)
        self.by_index = {item.index: item for item in self.items}
        self.pool: RenderPool | None = None
        self.bar: Any = None

    def run_dir(self, item: StudyItem) -> Path:
        return self.job_dir / SAMPLES_DIR / item.name

    def config_of(self, item: StudyItem) -> dict[str, Any]:
        """The sample's resolved config, as its metadata.json records it."""
        return to_data(replace(self.app, sample_idx=item.index))

    def render_task(self, item: StudyItem, record: dict[str, Any]) -> RenderTask:
        num_layers = int(record["model"]["num_layers"])
        keep = resolve_layers(self.app.capture.layers, int(record["layer"]), num_layers)  # what the video reads
        return RenderTask(item.index, str(self.run_dir(item)), record, self.app.render, self.video,
                          self.app.start_phrase, item.video, metrics_plan(self.app, keep))

    def submit(self, item: StudyItem, record: dict[str, Any]) -> None:
        """Hand a sample to the render pool (a generated one's record saved first, so a stop here loses nothing)."""
        if not record.get("add_video"):  # a complete sample getting its video: metadata.json is its record
            write_pending(self.run_dir(item), record)
        self.index.mark(item.index, RUNNING)
        assert self.pool is not None
        self.pool.submit(self.render_task(item, record))
        self.pool.poll()

    def failed(self, item: StudyItem, err: BaseException) -> None:
        """Record a sample that could not be generated; the study goes on (debug=true stops it instead)."""
        if self.app.debug:
            raise err
        raw = self.raw[item.index]
        sample = raw if isinstance(raw, dict) else {"id": item.id}
        line = record_failure(self.run_dir(item), err, sample, self.config_of(item))
        self.index.mark(item.index, FAILED, error=line)
        self._finished(item, f"failed: {line}")

    def rendered(self, result: RenderResult) -> None:
        item = self.by_index[result.index]
        self.index.costs.render_s += result.render_s
        if result.ok:
            self.index.mark(item.index, COMPLETE, error=None, files=result.files, n_generated=result.n_generated,
                            render_s=round(result.render_s, 3))
            self._finished(item, f"complete ({result.n_generated} tokens, rendered in {result.render_s:.1f} s)")
        else:
            self.index.mark(item.index, FAILED, error=result.error)
            self._finished(item, f"failed: {result.error}")

    def _finished(self, item: StudyItem, what: str) -> None:
        (log.info if what.startswith("complete") else log.error)("sample %s: %s -> %s", item.id, what,
                                                                 self.run_dir(item))
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(queue=self.pool.depth() if self.pool else 0, failed=self.index.n_failed)
        self.index.save()


def run_study(app: AppConfig, job_dir: Path, study: Study | None = None) -> dict[str, Any]:
    """Run (or resume) the study job into ``job_dir``; returns study.json's data. Raises StudyFailed when a sample
    failed (after every other sample was done). ``study``: one already built (a comparison edits its samples)."""
    study = study or Study(app, job_dir)
    states = {item.index: inspect_sample(study.run_dir(item), item.video) for item in study.items}
    for item in study.items:
        if states[item.index].kind == DONE:
            study.index.already_complete(item.index, study.run_dir(item), states[item.index].meta)
    to_render = [item for item in study.items if states[item.index].kind not in (DONE, GENERATE)]
    to_generate = [item for item in study.items if states[item.index].kind == GENERATE]
    log.info("study: %d samples (shard %d of %d): %d complete, %d to render, %d to generate; %d render worker(s)",
             len(study.items), app.shard, app.num_shards, study.index.skipped, len(to_render), len(to_generate),
             study.workers)
    if to_generate:
        check_layers(app)  # before the model loads: a wrong layer index should not cost a checkpoint load
    study.index.save(force=True)
    capacity = 2 * study.workers + app.batch_size  # a batch's samples plus two per worker, queued or rendering
    with logging_redirect_tqdm(), tqdm(total=len(to_render) + len(to_generate), desc="study", unit="sample") as bar, \
            RenderPool(study.workers, capacity, study.rendered) as pool:
        study.bar, study.pool = bar, pool
        for item in to_render:
            study.submit(item, states[item.index].pending)
        if to_generate:
            from attnviz.study.generation import generate_samples  # torch and transformers: only now

            generate_samples(study, to_generate)
    data = study.index.save(final=True)
    assert data is not None
    log.info("study: %d of %d samples complete, %d failed; %s", data["n_complete"], data["n_samples"],
             data["n_failed"], job_dir / "index.html")
    if data["n_failed"]:
        raise StudyFailed(f"{data['n_failed']} of {data['n_samples']} samples failed; see {job_dir / 'study.json'}")
    return data
