"""Sweep jobs on the demo model, in one process: one generation per sample, exact reuse, skip_existing."""

from __future__ import annotations

import numpy as np
import pytest

import attnviz.tracing
from attnviz.app import run
from attnviz.outputs import read_metadata
from attnviz.sweep.cache import add_planned_layers
from attnviz.trace import load_trace

SMALL = ("video.width=320", "video.height=180")


@pytest.fixture()
def generate_calls(monkeypatch):
    """Counts the model's generate-with-capture calls (the expensive step a sweep must not repeat)."""
    calls = []
    real = attnviz.tracing.generate_with_capture

    def counting(model, inputs, recorder, gen_cfg):
        calls.append(list(recorder.layers))
        return real(model, inputs, recorder, gen_cfg)

    monkeypatch.setattr(attnviz.tracing, "generate_with_capture", counting)
    return calls


def test_three_layers_two_samples_generate_twice(tmp_path, compose_cfg, generate_calls):
    cache = tmp_path / "sweep" / ".traces"
    add_planned_layers(cache, [0, 1, 2])  # what the sweep callback writes for layer_idx=0,1,2
    jobs = [(layer, sample) for layer in (0, 1, 2) for sample in (0, 1)]

    def job_cfg(layer, sample, *extra):
        out = tmp_path / "sweep" / f"layer_idx={layer},sample_idx={sample}"
        return compose_cfg(f"layer_idx={layer}", f"sample_idx={sample}", f"trace_cache={cache}",
                           f"output_dir='{out}'", *SMALL, *extra), out

    for layer, sample in jobs:
        video = run(job_cfg(layer, sample)[0])
        assert video.name == f"combined_attention_visualization_layer{layer}.mp4" and video.stat().st_size > 0
    # one generation per sample, capturing every swept layer (and every other one, for the metrics)
    assert generate_calls == [[0, 1, 2, 3], [0, 1, 2, 3]]

    metas = {job: read_metadata(job_cfg(*job)[1]) for job in jobs}
    for (layer, sample), meta in metas.items():
        assert meta["status"] == "complete" and meta["layer"] == layer and meta["config"]["sample_idx"] == sample
        assert meta["captured_layers"] == [0, 1, 2] and meta["trace_cache"]["generated"] == (layer == 0)
    assert metas[(2, 1)]["generated_text"] == metas[(0, 1)]["generated_text"] != metas[(0, 0)]["generated_text"]

    # A reused trace holds exactly the rows a job of its own would have captured.
    own = compose_cfg("layer_idx=2", "sample_idx=1", "reuse_traces=false", f"output_dir={tmp_path / 'own'}", *SMALL)
    run(own)
    np.testing.assert_array_equal(
        load_trace(tmp_path / "own" / "trace").rows[2], load_trace(job_cfg(2, 1)[1] / "trace").rows[2]
    )

    # skip_existing: a second pass over the finished sweep neither generates nor rewrites anything.
    before = {job: (job_cfg(*job)[1] / "metadata.json").stat().st_mtime_ns for job in jobs}
    generate_calls.clear()
    for layer, sample in jobs:
        run(job_cfg(layer, sample, "skip_existing=true")[0])
    assert generate_calls == []
    assert {job: (job_cfg(*job)[1] / "metadata.json").stat().st_mtime_ns for job in jobs} == before


def test_skip_existing_reruns_a_failed_job(tmp_path, compose_cfg, generate_calls):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metadata.json").write_text('{"status": "failed", "error": "killed"}')
    run(compose_cfg("layer_idx=1", "skip_existing=true", f"output_dir={out}", *SMALL))
    assert len(generate_calls) == 1 and read_metadata(out)["status"] == "complete"
