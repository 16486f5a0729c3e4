"""The shared trace cache: what the key depends on, one producer under concurrency, no half-written entry."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from attnviz.sweep.cache import add_planned_layers, planned_layers, read_entry, shared_trace, trace_key
from attnviz.trace import ImageGeometry, Trace

NUM_LAYERS = 4


def synthetic_trace(layers: list[int], seed: int = 0) -> Trace:
    """Prompt of 6 tokens (2 image, 3 text, 1 special), 3 generated; rows are softmax-like and distinct per layer."""
    rng = np.random.default_rng(seed)
    rows = {}
    for layer in layers:
        raw = rng.random((3, 8)) + layer  # (T, S - 1)
        for t in range(3):
            raw[t, 6 + t :] = 0.0  # keys after the query are zero (see attnviz.trace)
        rows[layer] = (raw / raw.sum(axis=1, keepdims=True)).astype(np.float32)
    return Trace(
        token_ids=list(range(9)),
        token_texts=[f"t{i}" for i in range(9)],
        token_kinds=["special", "image", "image", "text", "text", "text", "text", "text", "special"],
        prompt_len=6,
        images=[ImageGeometry(index=0, token_start=1, grid_h=1, grid_w=2, pixel_h=28, pixel_w=56)],
        rows=rows,
    )


def _producer(counter: Path, delay: float = 0.0, own: int = 0):
    def produce(extra_layers: list[int]):  # like the real one: the planned layers (0-2), its own, the old entry's
        with open(counter, "a") as f:  # O_APPEND: one line per call, from any process
            f.write(f"{os.getpid()} {sorted(extra_layers)}\n")
        time.sleep(delay)  # widen the window in which a second job would see a half-written entry
        trace = synthetic_trace(sorted({0, 1, 2, own % NUM_LAYERS, *extra_layers}))
        return trace, {"key": "k", "model": {"num_layers": NUM_LAYERS}, "prompt": "p", "timings": {}}

    return produce


def _own(layer: int):
    return lambda num_layers: [layer % num_layers]


def _job(cache: str, run_dir: str, layer: int, counter: str, out: str) -> None:
    got = shared_trace(
        Path(cache), "k", Path(run_dir), own_layers=_own(layer), produce=_producer(Path(counter), 0.5, layer),
        images=[Image.new("RGB", (56, 28), "white")], dtype="float32",
    )
    np.save(out, got.trace.rows[layer])


def test_concurrent_jobs_generate_once_and_all_read_the_full_trace(tmp_path):
    counter = tmp_path / "calls.txt"
    ctx = multiprocessing.get_context("fork")
    procs = []
    for i, layer in enumerate([0, 1, 2, 1]):
        args = (str(tmp_path / "cache"), str(tmp_path / f"run{i}"), layer, str(counter), str(tmp_path / f"{i}.npy"))
        procs.append(ctx.Process(target=_job, args=args))
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(counter.read_text().splitlines()) == 1  # one generation for four jobs
    expected = synthetic_trace([0, 1, 2]).rows
    for i, layer in enumerate([0, 1, 2, 1]):
        np.testing.assert_array_equal(np.load(tmp_path / f"{i}.npy"), expected[layer])
        run_trace = tmp_path / f"run{i}" / "trace"
        assert sorted(p.name for p in run_trace.iterdir()) == [
            "image_0.png", "layer_000.rows", "layer_001.rows", "layer_002.rows", "trace.json"
        ]
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["k", "k.lock"]  # no temporary left


def test_failed_generation_publishes_nothing_and_the_next_job_generates(tmp_path):
    cache = tmp_path / "cache"

    def failing(extra_layers):
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        shared_trace(cache, "k", tmp_path / "a", own_layers=_own(0), produce=failing, images=[], dtype="float16")
    assert read_entry(cache / "k") is None and not any(p.name.startswith(".k") for p in cache.iterdir())
    got = shared_trace(
        cache, "k", tmp_path / "b", own_layers=_own(0), produce=_producer(tmp_path / "n"), images=[], dtype="float16"
    )
    assert got.generated and got.trace.layers == [0, 1, 2]
    assert got.trace.rows[0].dtype == np.float16  # every job renders what is on disk


def test_an_entry_lacking_the_jobs_layer_is_generated_again_with_the_union(tmp_path):
    cache, counter = tmp_path / "cache", tmp_path / "calls.txt"
    first = shared_trace(cache, "k", tmp_path / "a", own_layers=_own(1), produce=_producer(counter), images=[],
                         dtype="float32")
    again = shared_trace(cache, "k", tmp_path / "b", own_layers=_own(-2), produce=_producer(counter), images=[],
                         dtype="float32")
    third = shared_trace(cache, "k", tmp_path / "c", own_layers=_own(3), produce=_producer(counter, own=3), images=[],
                         dtype="float32")
    assert first.generated and not again.generated  # -2 is layer 2 of 4: already there
    assert third.generated and third.trace.layers == [0, 1, 2, 3]
    assert counter.read_text().splitlines()[1].endswith("[0, 1, 2]")  # the old entry's layers were kept
    assert (tmp_path / "a" / "trace" / "layer_002.rows").is_file()  # earlier run dirs keep their files


def test_plan_is_merged_across_sweeps(tmp_path):
    assert planned_layers(tmp_path) == []
    add_planned_layers(tmp_path, [3, 1])
    assert add_planned_layers(tmp_path, [2, 1]) == [1, 2, 3] == planned_layers(tmp_path)


def test_trace_key_ignores_layer_and_rendering_but_not_what_changes_the_answer(compose_cfg):
    image = Image.new("RGB", (28, 28), "white")
    fields = {"id": "a", "problem": "where?"}
    base = trace_key(compose_cfg(), fields, [image])
    for same in (["layer_idx=1"], ["render.colormap=viridis"], ["video.width=320"], ["capture.layers=all"]):
        assert trace_key(compose_cfg(*same), fields, [image]) == base, same
    for other in (["generation.max_new_tokens=5"], ["generation.seed=1"], ["dtype=float16"], ["capture.dtype=float32"],
                  ["dataset.prompt_template='Q: {Question}'"], ["model.path=/elsewhere"]):
        assert trace_key(compose_cfg(*other), fields, [image]) != base, other
    assert trace_key(compose_cfg(), {**fields, "problem": "what?"}, [image]) != base
    assert trace_key(compose_cfg(), fields, [Image.new("RGB", (28, 28), "black")]) != base
