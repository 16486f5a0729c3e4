"""The model side of a study: load it once, prepare samples, generate them in batches, hand each finished trace
to the render pool. Imported only when a sample needs generating (it brings torch and transformers).

Batches: ``batch_size`` samples generated together (left padding). Samples are prepared a window of
WINDOW batches ahead and sorted by prompt length within it, so a batch pads little; memory stays bounded by the
window. Replay, and ``batch_size=1``, run one sample at a time (exactly a single run's path). A batch that fails is
retried sample by sample, so only the sample at fault is recorded as failed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any

from PIL import Image

from attnviz.checks import resolve_layer
from attnviz.data import Sample, load_images, parse_sample, video_sampling
from attnviz.files import TRACE_DIR
from attnviz.outputs import prepare_run_dir
from attnviz.rerender import save_inputs
from attnviz.schema import Mode
from attnviz.study.selection import StudyItem
from attnviz.study.state import pending_record
from attnviz.tracing import PreparedSample

if TYPE_CHECKING:
    from attnviz.study.runner import Study
    from attnviz.visualizer import AttentionVisualizer

log = logging.getLogger(__name__)
WINDOW = 4  # batches prepared ahead and sorted by prompt length


def load_visualizer(study: Study) -> AttentionVisualizer:
    from attnviz.visualizer import AttentionVisualizer

    t0 = time.perf_counter()
    viz = AttentionVisualizer.from_config(study.app, study.job_dir)
    study.index.costs.model_loads += 1
    study.index.costs.load_s += time.perf_counter() - t0
    log.info("model loaded in %.1f s (%d layers, %s)", study.index.costs.load_s, viz.loaded.num_layers,
             viz.loaded.device)
    return viz


def generate_samples(study: Study, items: list[StudyItem]) -> None:
    """Generate ``items`` (none complete yet) and submit each to the render pool."""
    viz = load_visualizer(study)
    layer = resolve_layer(int(study.app.layer_idx), viz.loaded.num_layers)
    if study.app.batch_size == 1 or viz.mode != Mode.generate:
        for item in items:
            one_sample(study, viz, item, layer)
        return
    if study.app.generation.do_sample:
        log.warning("generation.do_sample with batch_size > 1: samples draw other random numbers than alone")
    for window in chunks(items, study.app.batch_size * WINDOW):
        prepared = [p for p in (prepare(study, viz, item) for item in window) if p is not None]
        prepared.sort(key=lambda pair: pair[1].prompt_len)
        for batch in chunks(prepared, study.app.batch_size):
            run_batch(study, viz, batch, layer)


def chunks(values: list, size: int) -> Iterator[list]:
    it = iter(values)
    while chunk := list(islice(it, size)):
        yield chunk


def load_item(study: Study, item: StudyItem) -> tuple[Sample, list[Image.Image]]:
    app = study.app
    sample = parse_sample(study.raw[item.index], item.index, app.dataset.json)
    return sample, load_images(sample, app.dataset.image_dir, app.max_image_num, video_sampling(app.dataset))


def prepare(study: Study, viz: AttentionVisualizer, item: StudyItem) -> tuple[StudyItem, PreparedSample] | None:
    """The sample's inputs; a sample that cannot be prepared (missing image, too long) is recorded as failed."""
    try:
        return item, viz.prepare(*load_item(study, item))
    except Exception as err:
        study.failed(item, err)
        return None


def one_sample(study: Study, viz: AttentionVisualizer, item: StudyItem, layer: int) -> None:
    """Exactly a single run's generation (or replay), then the hand-off."""
    try:
        sample, images = load_item(study, item)
        run_dir = prepare_run_dir(study.run_dir(item))
        t0 = time.perf_counter()
        _, prompt = viz.generate_trace(sample, images, [layer], run_dir / TRACE_DIR)
        took = time.perf_counter() - t0
    except Exception as err:
        study.failed(item, err)
        return
    study.index.costs.generate_s += took
    study.index.costs.batches += 1
    hand_off(study, viz, item, sample, images, prompt, layer, {f"{viz.mode}_s": took})


def run_batch(study: Study, viz: AttentionVisualizer, batch: list[tuple[StudyItem, PreparedSample]],
              layer: int) -> None:
    """Generate ``batch`` together; when that fails, each sample alone (only the faulty one is recorded)."""
    dirs = [prepare_run_dir(study.run_dir(item)) for item, _ in batch]
    t0 = time.perf_counter()
    try:
        viz.generate_traces([p for _, p in batch], [layer], [d / TRACE_DIR for d in dirs])
    except Exception as err:
        if study.app.debug or len(batch) == 1:
            for item, _ in batch:
                study.failed(item, err)
            return
        log.warning("a batch of %d failed (%s); generating its samples one by one", len(batch), err)
        for pair in batch:
            run_batch(study, viz, [pair], layer)
        return
    took = time.perf_counter() - t0
    study.index.costs.generate_s += took
    study.index.costs.batches += 1
    timings = {"generate_s": took / len(batch), "batch_generate_s": took, "batch_size": float(len(batch))}
    for item, prepared in batch:
        hand_off(study, viz, item, prepared.sample, prepared.images, prepared.prompt, layer, timings)


def hand_off(study: Study, viz: AttentionVisualizer, item: StudyItem, sample: Sample, images: list[Image.Image],
             prompt: str, layer: int, timings: dict[str, Any]) -> None:
    """Keep the inputs beside the rows, then queue the sample's rendering."""
    run_dir = study.run_dir(item)
    try:
        save_inputs(images, run_dir / TRACE_DIR)
        all_timings = {"load_s": study.index.costs.load_s, **timings}
        record = pending_record(viz.model_info(), sample.fields, prompt, all_timings, study.config_of(item), layer)
    except Exception as err:
        study.failed(item, err)
        return
    study.submit(item, record)
