"""A demo sweep through a real SLURM cluster (hydra/launcher=slurm, i.e. hydra-submitit-launcher's sbatch path).

Needs a reachable cluster (SLURM_CONF / sinfo): ``scripts/slurm_local.sh start`` brings one up on this machine.
Skipped without one, except under CI=true, where .ci/run starts it and the test is required.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from attnviz.config import PROJECT_ROOT

# The local cluster has no GPUs and few cores: the slurm preset's GPU and memory requests scaled down.
LOCAL_CLUSTER = ("hydra.launcher.gpus_per_node=null", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
                 "hydra.launcher.timeout_min=15")


def _cluster_problem() -> str | None:
    if shutil.which("sbatch") is None:
        return "no sbatch on PATH"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"scontrol ping failed: {err}"
    if ping.returncode != 0 or "UP" not in ping.stdout:
        last = (ping.stdout + ping.stderr).strip().splitlines()[-1:] or [""]
        return f"no SLURM controller answers (scontrol ping: {last[0][:160]})"
    return None


@pytest.fixture(scope="module")
def slurm_cluster() -> None:
    problem = _cluster_problem()
    if problem is None:
        return
    message = f"{problem}; start one with scripts/slurm_local.sh start and export SLURM_CONF"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must prove the SLURM path: {message}")
    pytest.skip(message)


def _sacct_states(job_ids: list[str]) -> dict[str, str]:
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-o", "JobIDRaw,State", "-j", ",".join(job_ids)],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    return dict(line.split("|", 1) for line in out.splitlines() if line)


def _final_states(job_ids: list[str], timeout: float = 60.0) -> dict[str, str]:
    """sacct states once every job has left RUNNING: a job's process ends a moment after submitit has its result."""
    deadline = time.monotonic() + timeout
    while True:
        states = _sacct_states(job_ids)
        if not {"PENDING", "RUNNING", "COMPLETING"} & set(states.values()) or time.monotonic() > deadline:
            return states
        time.sleep(1)


@pytest.mark.slow
def test_demo_sweep_on_slurm(tmp_path, slurm_cluster):
    sweep = tmp_path / "sweep"
    # Jobs import attnviz from this checkout, as run.py does (submitit starts them in the submission cwd).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, str(PROJECT_ROOT / "run.py"), "-m", "hydra/launcher=slurm", *LOCAL_CLUSTER,
           "layer_idx=0,1", "sample_idx=0", "video.width=320", "video.height=180", f"hydra.sweep.dir={sweep}"]
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    summary = json.loads((sweep / "summary.json").read_text())
    assert summary["n_jobs"] == summary["n_complete"] == 2 and summary["generate_calls"] == 1
    job_ids = []
    for job in summary["jobs"]:
        meta = json.loads((sweep / job["files"]["metadata"]).read_text())
        assert meta["status"] == "complete" and meta["slurm_job_id"] == job["slurm_job_id"]
        assert (sweep / job["files"]["video"]).stat().st_size > 0
        job_ids.append(job["slurm_job_id"])
    assert all(job_ids) and len(set(job_ids)) == 2  # each run was its own SLURM job
    assert set(_final_states(job_ids).values()) == {"COMPLETED"}
    assert (sweep / "index.html").is_file() and (sweep / "image_attention_share.png").is_file()
    assert any((sweep / ".submitit").iterdir())  # submitit's sbatch scripts and logs


@pytest.mark.slow
def test_two_shard_study_on_slurm(tmp_path, slurm_cluster):
    """shard=0,1 num_shards=2: two array tasks, each one study job loading the model once; one merged index."""
    sweep = tmp_path / "sweep"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
    cluster = [*LOCAL_CLUSTER[:2], "hydra.launcher.mem_gb=2", *LOCAL_CLUSTER[3:]]
    cmd = [sys.executable, str(PROJECT_ROOT / "run.py"), "-m", "hydra/launcher=slurm", *cluster, "samples=0:5",
           "shard=0,1", "num_shards=2", "batch_size=2", "render_workers=1", "videos=3", "generation.max_new_tokens=8",
           "video.width=320", "video.height=180", f"hydra.sweep.dir={sweep}"]
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    merged = json.loads((sweep / "study.json").read_text())
    assert merged["status"] == "complete" and merged["n_samples"] == merged["n_complete"] == 5
    assert merged["n_jobs"] == 2 and merged["model_loads"] == 2  # one load per shard
    assert sorted(entry["index"] for entry in merged["samples"]) == [0, 1, 2, 3, 4]
    job_ids = [job["slurm_job_id"] for job in merged["jobs"]]
    assert all(job_ids) and len(set(job_ids)) == 2
    assert set(_final_states(job_ids).values()) == {"COMPLETED"}
    for entry in merged["samples"]:
        meta = json.loads((sweep / entry["dir"] / "metadata.json").read_text())
        assert meta["status"] == "complete" and meta["slurm_job_id"] in job_ids
        assert ("video" in meta["files"]) == (entry["index"] < 3)  # videos=3: the first three of the selection
    assert 'href="shard=1/samples/' in (sweep / "index.html").read_text()


@pytest.mark.slow
def test_two_shard_comparison_on_slurm(tmp_path, slurm_cluster):
    """compare=demo with shard=0,1: each SLURM task compares its half (both models, one at a time); the sweep
    folder gets one report over both halves."""
    sweep = tmp_path / "sweep"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
    cluster = [*LOCAL_CLUSTER[:2], "hydra.launcher.mem_gb=2", *LOCAL_CLUSTER[3:]]
    cmd = [sys.executable, str(PROJECT_ROOT / "run.py"), "-m", "hydra/launcher=slurm", *cluster, "compare=demo",
           "samples=0:4", "shard=0,1", "num_shards=2", "render_workers=0", "videos=none", f"hydra.sweep.dir={sweep}"]
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    records = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/compare.json"))]
    assert len(records) == 2 and all(r["n_compared"] == r["n_samples"] == 2 for r in records)
    job_ids = [r["slurm_job_id"] for r in records]
    assert all(job_ids) and len(set(job_ids)) == 2
    assert set(_final_states(job_ids).values()) == {"COMPLETED"}
    with (sweep / "compare.csv").open() as f:
        rows = [row for row in csv.DictReader(f) if row["segment"] == "answer"]
    assert rows and {row["n"] for row in rows} == {"4"}  # every paired figure pools both shards
