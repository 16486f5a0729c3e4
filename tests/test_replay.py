"""Replay: one teacher-forced pass gives the rows generation gives for the same tokens; the stored answer is found."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra.errors import ConfigCompositionException

from attnviz.app import run
from attnviz.capture import RowRecorder, attention
from attnviz.capture.generate import generate_with_capture
from attnviz.capture.recorder import MemorySink
from attnviz.capture.replay import answer_ids, answer_text, replay_with_capture
from attnviz.config import REASON_RFT_PROMPT, GenerationConfig
from attnviz.data import load_sample
from attnviz.errors import AttnvizError
from attnviz.models.loading import load_model
from attnviz.outputs import read_metadata
from attnviz.trace import load_trace
from tests.capture_reference import eager_attentions, max_row_error, with_answer
from tests.conftest import DEMO_DATA

SAMPLE = {"id": "a", "problem": "p", "image": "x.png", "solution": "<answer>(1,2)</answer>", "answer": "(1,2)"}


@pytest.mark.parametrize(
    "fields,key,expected",
    [
        ({**SAMPLE, "pred": "(3,4)"}, None, ("pred", "(3,4)")),
        (SAMPLE, None, ("answer", "(1,2)")),
        ({**SAMPLE, "answer": ""}, None, ("solution", SAMPLE["solution"])),
        ({**SAMPLE, "pred": "(3,4)"}, "solution", ("solution", SAMPLE["solution"])),
    ],
)
def test_answer_text_prefers_pred_then_answer_then_solution(fields, key, expected):
    assert answer_text(fields, key) == expected


def test_answer_text_errors_name_the_key():
    with pytest.raises(AttnvizError, match="capture.replay_key='model_output'"):
        answer_text(SAMPLE, "model_output")
    with pytest.raises(AttnvizError, match="none of pred, answer, solution"):
        answer_text({"problem": "p", "image": "x"})


def _demo_inputs(loaded):
    sample, images = load_sample(DEMO_DATA / "demo.json", DEMO_DATA, 2)
    prompt = loaded.adapter.build_prompt(REASON_RFT_PROMPT.format(Question=sample.problem), len(images))
    return loaded.adapter.prepare_inputs(prompt, images), sample


@pytest.mark.parametrize("chunk", [attention.QUERY_CHUNK, 5])  # 5: rows scored over several chunks
def test_replay_rows_equal_generation_rows_and_eager(demo_model_dir, monkeypatch, chunk):
    monkeypatch.setattr(attention, "QUERY_CHUNK", chunk)
    loaded = load_model(str(demo_model_dir), device="cpu", dtype="float32")
    inputs, _ = _demo_inputs(loaded)
    layers = list(range(loaded.num_layers))
    generated_sink, replay_sink = MemorySink(), MemorySink()
    ids = generate_with_capture(loaded.model, inputs, RowRecorder(layers, generated_sink), GenerationConfig(16))
    prompt_len = inputs["input_ids"].shape[1]
    recorder = RowRecorder(layers, replay_sink, head_layers=[1], answer=(prompt_len, len(ids)))
    replay_with_capture(loaded.model, inputs, ids, recorder)
    for layer in layers:
        assert len(replay_sink.rows[layer]) == len(ids)
        for got, want in zip(replay_sink.rows[layer], generated_sink.rows[layer], strict=True):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)  # batched vs incremental matmul order
    full = torch.cat([inputs["input_ids"], torch.tensor([ids])], dim=1)
    reference = eager_attentions(loaded.model, with_answer(inputs, full))
    assert max_row_error(replay_sink, reference, layers, prompt_len) <= 1e-6
    assert max_row_error(replay_sink, reference, [1], prompt_len, heads=True) <= 1e-6


def test_replay_run_writes_the_stored_answer_and_rerenders(compose_cfg, tmp_path, demo_model_dir):
    cfg = compose_cfg("mode=replay", "sample_idx=2", "capture.layers=all", "capture.heads=all",
                      "video.width=320", "video.height=180", "layer_idx=1")
    run(cfg)
    meta = read_metadata(tmp_path)
    sample, _ = load_sample(DEMO_DATA / "demo.json", DEMO_DATA, 2)
    trace = load_trace(tmp_path)
    assert meta["mode"] == trace.mode == "replay" and meta["status"] == "complete"
    assert trace.generated_text() == sample.fields["answer"]  # the answer that was scored, not a new one
    assert trace.layers == trace.head_layers == [0, 1, 2, 3]
    last = trace.n_steps - 1
    assert trace.head_rows(3, last).mean(axis=0) == pytest.approx(trace.row(3, last), abs=1e-3)
    tokenizer = load_model(str(demo_model_dir), device="cpu").adapter.tokenizer
    assert trace.n_steps == meta["n_frames"] == len(answer_ids(tokenizer, sample.fields["answer"]))
    again = compose_cfg(f"render_only={tmp_path}", "layer_idx=3", "render.colormap=viridis", "model.path=/none",
                        f"output_dir={tmp_path / 'again'}", "video.width=320", "video.height=180")
    assert run(again).name == "combined_attention_visualization_layer3.mp4"
    assert read_metadata(tmp_path / "again")["layer"] == 3


def test_unknown_mode_is_a_clear_error_before_the_model_loads(compose_cfg, monkeypatch):
    monkeypatch.setattr("attnviz.visualizer.load_model", lambda *a, **k: pytest.fail("model loaded"))
    with pytest.raises(ConfigCompositionException) as failed:  # at compose time: nothing has loaded yet
        run(compose_cfg("mode=teach", "video.width=320", "video.height=180"))
    assert "Invalid value 'teach', expected one of [generate, replay]" in str(failed.value.__cause__)
