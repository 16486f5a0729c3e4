"""Studies on the demo model, in one process: one model load for many samples, each sample a single run's files,
study.json + index.html, resume (complete samples skipped, a video made later without the model), failures recorded
while the others go on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from attnviz.app import run
from attnviz.outputs import read_metadata
from attnviz.study.runner import StudyFailed
from tests.conftest import CONF_DIR, DEMO_DATA

SMALL = ("video.width=320", "video.height=180", "generation.max_new_tokens=8", "render_workers=1")


def _run(out: Path, *overrides: str):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose("config", overrides=[f"output_dir='{out}'", *SMALL, *overrides])
    return run(cfg)


def _study(job: Path) -> dict:
    return json.loads((job / "study.json").read_text())


def _files(run_dir: Path) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()}


def test_a_study_gives_each_sample_a_single_runs_files_with_one_model_load(tmp_path):
    job = tmp_path / "study"
    _run(job, "samples=0:3", "batch_size=2", "videos=[demo_001]")
    data = _study(job)
    assert data["status"] == "complete" and data["n_complete"] == data["n_samples"] == 3
    assert data["model_loads"] == 1 and data["batches"] == 2 and data["generate_s"] > 0 and data["render_s"] > 0
    entries = {e["id"]: e for e in data["samples"]}
    assert [e["index"] for e in data["samples"]] == [0, 1, 2]
    single = tmp_path / "single"
    _run(single, "sample_idx=1")
    assert _files(job / entries["demo_001"]["dir"]) == _files(single)  # exactly what a single run writes
    no_video = _files(job / entries["demo_000"]["dir"])
    assert no_video == {f for f in _files(single) if not f.endswith(".mp4")}  # all but the MP4
    for entry in data["samples"]:
        meta = read_metadata(job / entry["dir"])
        assert meta["status"] == "complete" and meta["sample"]["id"] == entry["id"]
        assert meta["config"]["sample_idx"] == entry["index"] and entry["n_generated"] == meta["n_generated"]
        assert ("video" in meta["files"]) == (entry["id"] == "demo_001") == ("video" in entry["files"])
    page = (job / "index.html").read_text()
    assert all(f'href="{e["dir"]}/viewer.html"' in page for e in data["samples"])
    assert not list(job.rglob(".study-pending.json"))


def test_a_resumed_study_skips_complete_samples_and_makes_videos_later_without_the_model(tmp_path):
    job = tmp_path / "study"
    _run(job, "samples=[2,3]", "videos=none")
    assert not list(job.rglob("*.mp4")) and _study(job)["model_loads"] == 1
    before = {p: p.stat().st_mtime_ns for p in job.rglob("trace/*")}
    metas = {d: read_metadata(d) for d in job.glob("samples/*")}
    _run(job, "samples=[2,3]", "videos=all")  # the videos, from the traces on disk
    data = _study(job)
    for run_dir, meta in metas.items():  # the metadata gains the video and keeps everything else it said
        after = read_metadata(run_dir)
        assert after["files"] == {**meta["files"], "video": after["files"]["video"]}
        assert after["generated_text"] == meta["generated_text"] and after.get("correct") == meta.get("correct")
    assert data["model_loads"] == 0 and data["n_complete"] == 2 and len(list(job.rglob("*.mp4"))) == 2
    assert {p: p.stat().st_mtime_ns for p in job.rglob("trace/*") if p in before} == before  # not generated again
    _run(job, "samples=[2,3]", "videos=all")
    data = _study(job)
    assert data["model_loads"] == 0 and data["n_skipped"] == 2 and data["status"] == "complete"


def test_render_only_makes_the_video_of_a_sample_that_has_none(tmp_path):
    job = tmp_path / "study"
    _run(job, "samples=[4]", "videos=none")
    sample_dir = job / "samples" / "demo_004"
    video = _run(tmp_path / "later", f"render_only='{sample_dir}'", "layer_idx=-1")
    assert video.suffix == ".mp4" and video.stat().st_size > 0


def _broken_dataset(tmp_path: Path) -> Path:
    samples = json.loads((DEMO_DATA / "demo.json").read_text())[:2]
    first = samples[0]["image"][0] if isinstance(samples[0]["image"], list) else samples[0]["image"]
    samples += [
        {**samples[0], "id": "missing", "image": "nope.png"},
        {**samples[0], "id": "three images", "image": [first, first, first]},
        {**samples[0], "id": "too/long", "problem": "word " * 5000},
    ]
    path = tmp_path / "data.json"
    path.write_text(json.dumps(samples))
    return path


@pytest.mark.parametrize("batch_size", [1, 3])
def test_failing_samples_are_recorded_and_the_others_go_on(tmp_path, batch_size):
    data_json, job = _broken_dataset(tmp_path), tmp_path / "study"
    with pytest.raises(StudyFailed, match="3 of 5 samples failed"):
        _run(job, "samples=all", f"batch_size={batch_size}", f"dataset.json='{data_json}'",
             f"dataset.image_dir='{DEMO_DATA}'")
    data = _study(job)
    assert data["status"] == "failed" and data["n_complete"] == 2 and data["n_failed"] == 3
    errors = {e["id"]: e["error"] for e in data["samples"] if e["status"] == "failed"}
    assert "nope.png does not exist" in errors["missing"]
    assert "has 3 images but max_image_num=2" in errors["three images"]
    assert "over the model's context of 4096" in errors["too/long"]
    assert all("\n" not in line for line in errors.values())
    failed = read_metadata(job / "samples" / "too_long")
    assert failed["status"] == "failed" and failed["error"] == errors["too/long"]
    assert "failed" in (job / "index.html").read_text()


def test_a_replay_study_replays_each_sample_alone(tmp_path):
    job = tmp_path / "study"
    _run(job, "samples=[0,1]", "mode=replay", "batch_size=4", "videos=none")
    data = _study(job)
    assert data["status"] == "complete" and data["model_loads"] == 1 and data["batches"] == 2
    for entry in data["samples"]:
        meta = read_metadata(job / entry["dir"])
        assert meta["mode"] == "replay" and meta["n_generated"] > 0
