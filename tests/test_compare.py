"""Checkpoint comparisons on the demo pair (demo/model vs demo/model_untaught), in one process: each model reads the
job's samples in turn; its rows equal its own single replay run; pred / first / each; together; refusals."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from attnviz.app import run
from attnviz.compare.models import ComparedModel
from attnviz.compare.runner import check_tokenizers
from attnviz.errors import AttnvizError
from attnviz.schema import ModelConfig
from attnviz.trace import load_trace
from tests.conftest import CONF_DIR

SMALL = ("video.width=640", "video.height=360", "render_workers=0", "generation.max_new_tokens=24")


def _run(out: Path, *overrides: str):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose("config", overrides=[f"output_dir='{out}'", *SMALL, *overrides])
    return run(cfg)


def _record(job: Path) -> dict:
    return json.loads((job / "compare.json").read_text())


def _trace(job: Path, label: str, sample: str):
    return load_trace(job / "models" / label / "samples" / sample / "trace")


@pytest.fixture(scope="module")
def pred_job(tmp_path_factory) -> Path:
    job = tmp_path_factory.mktemp("compare") / "pred"
    _run(job, "compare=demo", "samples=0:3", "videos=[demo_001]")
    return job


def test_compare_demo_gives_every_model_a_trace_and_each_sample_a_comparison(pred_job):
    data = _record(pred_job)
    assert data["kind"] == "compare" and data["reference"] == "demo" and data["answer"] == "pred"
    assert [m["label"] for m in data["models"]] == ["demo", "demo_untaught"]
    assert data["layer_matching"] == ["demo_untaught (4 layers) vs demo (4 layers): layers matched by index"]
    assert data["n_samples"] == data["n_compared"] == 3
    for entry in data["samples"]:
        sample = json.loads((pred_job / entry["dir"] / "compare.json").read_text())
        assert sample["sample_id"] == entry["id"] and sample["token_aligned"] is True
        assert [m["label"] for m in sample["models"]] == ["demo", "demo_untaught"]
        assert (pred_job / entry["dir"] / "compare.html").is_file()
    videos = sorted(p.relative_to(pred_job).as_posix() for p in pred_job.rglob("*.mp4"))
    assert videos == ["samples/demo_001/compare_layer3.mp4"]  # videos=[demo_001]; no per-model videos
    assert (pred_job / "report.html").is_file() and (pred_job / "metrics.csv").is_file()
    index = (pred_job / "index.html").read_text()
    links = re.findall(r'href="([^"]+)"', index)
    assert "samples/demo_001/compare_layer3.mp4" in links
    assert "models/demo_untaught/samples/demo_002/viewer.html" in links
    assert all((pred_job / link).is_file() for link in links)  # every link resolves


def test_both_models_read_the_same_stored_answer(pred_job):
    for sample in ("demo_000", "demo_002"):
        a, b = _trace(pred_job, "demo", sample), _trace(pred_job, "demo_untaught", sample)
        assert a.token_ids == b.token_ids and a.mode == b.mode == "replay"
        assert "<answer>" in a.generated_text()


def test_every_models_rows_equal_its_own_single_replay_run(pred_job, tmp_path):
    alone = tmp_path / "alone"
    _run(alone, "model=demo_untaught", "mode=replay", "capture.replay_key=solution", "capture.layers=all",
         "sample_idx=2", "video=draft", "video.width=640", "video.height=360")
    single, compared = load_trace(alone / "trace"), _trace(pred_job, "demo_untaught", "demo_002")
    assert single.token_ids == compared.token_ids and single.layers == compared.layers == [0, 1, 2, 3]
    for layer in single.layers:
        for step in range(single.n_steps):
            np.testing.assert_array_equal(single.row(layer, step), compared.row(layer, step))


def test_first_model_generates_and_the_others_replay_its_tokens(tmp_path):
    job = tmp_path / "first"
    _run(job, "compare=demo", "compare.answer=first", "samples=null", "sample_idx=1", "videos=none")  # one sample
    a, b = _trace(job, "demo", "demo_001"), _trace(job, "demo_untaught", "demo_001")
    assert a.mode == "generate" and b.mode == "replay" and a.token_ids == b.token_ids
    assert _record(job)["n_compared"] == 1


def test_each_model_generates_its_own_answer_and_only_aggregates_are_compared(tmp_path):
    job = tmp_path / "each"
    _run(job, "compare=demo", "compare.answer=each", "samples=[0]", "videos=[0]")
    assert _trace(job, "demo", "demo_000").mode == _trace(job, "demo_untaught", "demo_000").mode == "generate"
    sample = json.loads((job / "samples" / "demo_000" / "compare.json").read_text())
    assert sample["token_aligned"] is False and not list(job.rglob("compare_layer*.mp4"))
    assert sample["comparisons"][0]["deltas"]  # metric changes still there


def test_together_loads_both_and_gives_the_same_rows(pred_job, tmp_path):
    job = tmp_path / "together"
    _run(job, "compare=demo", "compare.together=true", "samples=[2]", "videos=none")
    for label in ("demo", "demo_untaught"):
        one, two = _trace(pred_job, label, "demo_002"), _trace(job, label, "demo_002")
        assert one.token_ids == two.token_ids
        np.testing.assert_array_equal(one.row(3, 5), two.row(3, 5))


def test_a_comparison_resumes_without_generating_again(pred_job):
    before = {p: p.stat().st_mtime_ns for p in pred_job.rglob("*.rows") if p.is_file()}
    _run(pred_job, "compare=demo", "samples=0:3", "videos=[demo_001]")
    after = {p: p.stat().st_mtime_ns for p in pred_job.rglob("*.rows") if p.is_file()}
    assert before and before == after
    assert _record(pred_job)["n_compared"] == 3


def test_different_tokenizers_are_refused_naming_the_models(demo_model_dir, tmp_path):
    from transformers import AutoTokenizer

    other = AutoTokenizer.from_pretrained(demo_model_dir)
    other.add_tokens(["<extra_token>"])  # one more entry: another vocabulary
    other.save_pretrained(tmp_path)
    models = [ComparedModel("demo", ModelConfig(path=str(demo_model_dir)), 4),
              ComparedModel("twin", ModelConfig(path=str(tmp_path)), 4)]
    check_tokenizers(models[:1] + models[:1])  # the same tokenizer passes
    with pytest.raises(AttnvizError, match="models 'demo' and 'twin' tokenise differently") as err:
        check_tokenizers(models)
    assert "compare.answer=each" in str(err.value) and "\n" not in str(err.value)


def test_the_demo_report_shows_the_layer_3_difference(tmp_path):
    """The demo pair's story from the report's own CSV: at layer 3 the taught model's share of image attention on
    the marker's cell is far above the untaught one's, and the paired interval excludes 0."""
    job = tmp_path / "demo"
    _run(job, "compare=demo", "videos=none", "video=draft")
    rows = list(csv.DictReader((job / "compare.csv").open()))
    def row(metric: str, layer: str) -> dict:  # the coordinate digits: where the marker is read
        (found,) = [r for r in rows if (r["metric"], r["layer"], r["segment"]) == (metric, layer, "coords")]
        return found

    gt = row("gt_share", "3")
    assert gt["model"] == "demo_untaught" and int(gt["n"]) == 16
    diff, lo, hi = float(gt["diff"]), float(gt["diff_lo"]), float(gt["diff_hi"])
    assert diff < -0.5 and lo <= diff <= hi < 0
    assert float(gt["mean_reference"]) > 0.9  # the taught model: nearly all image attention on the marker
    assert float(row("hit", "3")["diff_hi"]) < 0
