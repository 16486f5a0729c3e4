"""A real study process SIGKILLed mid-encode and mid-batch (its whole process group: the workers and ffmpeg too, as
a scheduler does) resumes into the same directory: nothing half-written ever looks complete, samples finished before
a kill are skipped, and the last run completes every sample with exit status 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from attnviz.config import PROJECT_ROOT
from attnviz.outputs import read_metadata
from attnviz.trace import load_trace

ARGS = ("samples=0:8", "batch_size=2", "render_workers=1", "generation.max_new_tokens=48", "video.width=640",
        "video.height=360", "metrics.enabled=false")
TEMPORARY = (".*.part", ".*.tmp", ".*.partial.*", ".study-pending.json")


def _start(job: Path, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, str(PROJECT_ROOT / "run.py"), *ARGS, f"output_dir={job}"]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.Popen(cmd, cwd=job.parent, env=env, stdout=log.open("a"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _kill_when(proc: subprocess.Popen, seen: Callable[[], bool], what: str, log: Path) -> None:
    deadline = time.monotonic() + 240
    while not seen():
        assert proc.poll() is None, f"the study ended before {what}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {what} within 240 s"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _complete(job: Path) -> set[str]:
    """Samples whose metadata says complete: every file it names must be whole and present."""
    done = set()
    for meta_path in job.glob("samples/*/metadata.json"):
        meta = read_metadata(meta_path.parent)
        if meta["status"] != "complete":
            continue
        for name in meta["files"].values():
            assert (meta_path.parent / name).exists(), f"{meta_path.parent.name}: complete but no {name}"
        assert load_trace(meta_path.parent).n_steps == meta["n_generated"]
        done.add(meta_path.parent.name)
    return done


@pytest.mark.slow
def test_a_killed_study_resumes_with_nothing_lost(tmp_path):
    job, log = tmp_path / "study", tmp_path / "study.log"
    encoding = lambda: any(job.glob("samples/*/.*.partial.mp4"))  # noqa: E731
    _kill_when(_start(job, log), encoding, "video being encoded", log)
    first = _complete(job)
    # the sample being encoded has its finished trace and its record: the next run renders it, generating nothing
    rendering = {p.parent: (p.parent / "trace" / "trace.json").stat().st_mtime_ns
                 for p in job.glob("samples/*/.study-pending.json") if (p.parent / "trace" / "trace.json").exists()}
    assert rendering

    def generating() -> bool:  # a batch's rows still in .part files, for samples not finished before
        return any(p.parent.parent.name not in first for p in job.glob("samples/*/trace/.*.part"))

    _kill_when(_start(job, log), generating, "batch being generated", log)
    second = _complete(job)
    assert first <= second
    final = _start(job, log)
    assert final.wait(timeout=600) == 0, log.read_text()[-3000:]
    data = json.loads((job / "study.json").read_text())
    assert data["status"] == "complete" and data["n_complete"] == 8 and data["n_skipped"] == len(second)
    assert len(_complete(job)) == 8 and len(list(job.glob("samples/*/*.mp4"))) == 8
    assert {d: (d / "trace" / "trace.json").stat().st_mtime_ns for d in rendering} == rendering
    leftovers = [p for pattern in TEMPORARY for p in job.rglob(pattern)]
    assert leftovers == []
