"""The merged index of a multirun of study jobs (shards): every job's samples with paths from the sweep directory,
costs added up, a missing or unfinished job makes it incomplete; ``python -m attnviz.study`` rewrites it."""

from __future__ import annotations

import json
from pathlib import Path

from attnviz.study.__main__ import main as study_main
from attnviz.study.merge import job_indexes, merge, write_merged


def _job(sweep: Path, name: str, shard: int, statuses: list[str]) -> None:
    job = sweep / name
    job.mkdir(parents=True)
    samples = [{"index": 2 * i + shard, "id": f"s{2 * i + shard}", "dir": f"samples/s{2 * i + shard}",
                "status": status, "error": "boom" if status == "failed" else None,
                "files": {"viewer": "viewer.html"}} for i, status in enumerate(statuses)]
    n_complete = statuses.count("complete")
    data = {"status": "complete" if n_complete == len(statuses) else "failed", "shard": shard, "num_shards": 2,
            "n_samples": len(statuses), "n_complete": n_complete, "n_failed": statuses.count("failed"),
            "model_loads": 1, "load_s": 2.0, "generate_s": 10.0, "render_s": 5.0, "batches": 1, "wall_s": 20.0 + shard,
            "slurm_job_id": f"7_{shard}", "samples": samples}
    (job / "study.json").write_text(json.dumps(data))
    (job / "samples" / "s0").mkdir(parents=True)
    (job / "samples" / "s0" / "study.json").write_text("{}")  # a sample's file of that name is not a job index


def test_merge_lists_every_sample_and_adds_up_the_costs(tmp_path):
    _job(tmp_path, "shard=0", 0, ["complete", "complete"])
    _job(tmp_path, "shard=1", 1, ["complete"])
    assert [p.parent.name for p in job_indexes(tmp_path)] == ["shard=0", "shard=1"]
    data = write_merged(tmp_path, expected_jobs=2)
    assert data["status"] == "complete" and data["n_samples"] == data["n_complete"] == 3
    assert data["model_loads"] == 2 and data["generate_s"] == 20.0 and data["wall_s"] == 21.0
    assert [s["dir"] for s in data["samples"]] == ["shard=0/samples/s0", "shard=0/samples/s2", "shard=1/samples/s1"]
    assert [j["slurm_job_id"] for j in data["jobs"]] == ["7_0", "7_1"]
    page = (tmp_path / "index.html").read_text()
    assert 'href="shard=1/samples/s1/viewer.html"' in page and "2 jobs" in page
    assert json.loads((tmp_path / "study.json").read_text())["n_jobs"] == 2


def test_a_failed_sample_or_a_missing_job_is_not_complete(tmp_path, capsys):
    _job(tmp_path, "shard=0", 0, ["complete", "failed"])
    data = merge(tmp_path, job_indexes(tmp_path), expected_jobs=2)
    assert data["status"] == "failed" and data["n_failed"] == 1 and data["n_jobs_missing"] == 1
    assert study_main([str(tmp_path)]) == 1
    assert "shard=0/samples/s2: failed: boom" in capsys.readouterr().out


def test_all_samples_complete_but_a_job_missing_is_incomplete(tmp_path):
    _job(tmp_path, "shard=0", 0, ["complete"])
    assert merge(tmp_path, job_indexes(tmp_path), expected_jobs=2)["status"] == "incomplete"
    assert study_main([str(tmp_path), "--jobs", "1"]) == 0
