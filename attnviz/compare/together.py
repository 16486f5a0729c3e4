"""``compare.together=true``: every model loaded at once and the samples finished one by one (each sample's
comparison can start while the job runs; memory: all the models). The default loads one model at a time.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from attnviz.checks import resolve_layer
from attnviz.compare.models import ComparedModel
from attnviz.compare.plan import answer_ids_of, model_dir
from attnviz.files import TRACE_DIR
from attnviz.schema import AppConfig, Mode
from attnviz.study.generation import load_visualizer, one_sample
from attnviz.study.pool import RenderPool
from attnviz.study.runner import Study
from attnviz.study.state import DONE, GENERATE, inspect_sample


def run_together(apps: list[AppConfig], job_dir: Path, models: list[ComparedModel]) -> None:
    """Each sample read by every model in turn (the first model's tokens handed on when the others replay them)."""
    from attnviz.compare.runner import with_answers

    studies = [Study(app, model_dir(job_dir, model)) for app, model in zip(apps, models, strict=True)]
    visualizers = [load_visualizer(study) for study in studies]
    layers = [resolve_layer(int(app.layer_idx), viz.loaded.num_layers) for app, viz in zip(apps, visualizers,
                                                                                            strict=True)]
    hand_on = apps[0].mode == Mode.generate and any(app.mode == Mode.replay for app in apps[1:])
    with ExitStack() as stack:
        for study in studies:
            workers = max(1, study.workers // len(studies))
            study.pool = stack.enter_context(RenderPool(workers, 2 * workers + 1, study.rendered))
            study.index.save(force=True)
        for k in range(len(studies[0].items)):
            for i, (study, viz, layer) in enumerate(zip(studies, visualizers, layers, strict=True)):
                item = study.items[k]
                state = inspect_sample(study.run_dir(item), item.video)
                if state.kind == DONE:
                    study.index.already_complete(item.index, study.run_dir(item), state.meta)
                elif state.kind != GENERATE:
                    study.submit(item, state.pending)
                else:
                    if i > 0 and hand_on:
                        ids = answer_ids_of(studies[0].run_dir(studies[0].items[k]) / TRACE_DIR)
                        with_answers(study, {item.index: ids} if ids else {})
                    one_sample(study, viz, item, layer)
    for study in studies:
        study.index.save(final=True)
