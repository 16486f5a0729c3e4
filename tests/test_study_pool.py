"""The render pool: a bounded queue (submit waits, memory stays bounded), a worker that dies gets its task retried,
workers exit when the study's process is SIGKILLed, and workers=0 renders inline."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from attnviz.schema import RenderConfig, VideoConfig
from attnviz.study.pool import RenderPool, worker_count
from attnviz.study.render import RenderResult, RenderTask


def _task(index: int, run_dir: str = "") -> RenderTask:
    return RenderTask(index, run_dir, {}, RenderConfig(), VideoConfig(), "", False)


def slow_render(task: RenderTask) -> RenderResult:
    time.sleep(0.2)
    return RenderResult(task.index, True, render_s=0.2)


def die_once_render(task: RenderTask) -> RenderResult:
    """Kills its worker the first time it sees task 1 (a marker file remembers), like the OOM killer would."""
    marker = Path(task.run_dir) / f"seen-{task.index}"
    if task.index == 1 and not marker.exists():
        marker.touch()
        os._exit(9)
    return RenderResult(task.index, True)


def pid_render(task: RenderTask) -> RenderResult:
    time.sleep(0.3)
    return RenderResult(task.index, True, error=str(os.getpid()))  # which process rendered it


def test_submit_waits_while_the_queue_is_full(tmp_path):
    done, depths = [], []
    with RenderPool(1, 2, done.append, render=slow_render, help=False) as pool:
        for index in range(6):
            pool.submit(_task(index))
            depths.append(pool.depth())
    assert max(depths) <= 2 and sorted(r.index for r in done) == list(range(6))
    assert all(r.ok for r in done)


def test_the_caller_renders_when_the_queue_is_full_and_at_the_end():
    done, depths = [], []
    with RenderPool(1, 3, done.append, render=pid_render) as pool:
        for index in range(8):
            pool.submit(_task(index))
            depths.append(pool.depth())
    assert max(depths) <= 3 and sorted(r.index for r in done) == list(range(8))
    by = {r.error for r in done}
    assert str(os.getpid()) in by and len(by) == 2  # this process and the worker both rendered


def test_a_dead_worker_costs_a_retry_not_the_task(tmp_path):
    done = []
    with RenderPool(1, 4, done.append, render=die_once_render, help=False) as pool:  # dies in a worker only
        for index in range(3):
            pool.submit(_task(index, str(tmp_path)))
    assert sorted(r.index for r in done) == [0, 1, 2] and all(r.ok for r in done)
    assert (tmp_path / "seen-1").exists()


def test_zero_workers_render_inline():
    done = []
    with RenderPool(0, 1, done.append, render=slow_render) as pool:
        pool.submit(_task(7))
        assert [r.index for r in done] == [7] and pool.depth() == 0


def test_worker_count_defaults_to_the_cores_left_over(monkeypatch):
    monkeypatch.setattr("attnviz.study.pool.available_cores", lambda: 2)
    assert worker_count(None) == 1 and worker_count(0) == 0 and worker_count(3) == 3
    monkeypatch.setattr("attnviz.study.pool.available_cores", lambda: 1)
    assert worker_count(None) == 1


PARENT = """
import sys, time
from attnviz.study.pool import RenderPool
from tests.test_study_pool import _task, slow_render
pool = RenderPool(1, 2, lambda r: None, render=slow_render)
pool.submit(_task(0))
pool.executor.submit(time.sleep, 600)
time.sleep(1.0)
print(" ".join(str(pid) for pid in pool.executor._processes), flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_workers_exit_when_the_study_process_is_killed():
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, cwd=root,
                            env={**os.environ, "PYTHONPATH": str(root)})
    try:
        workers = [int(pid) for pid in proc.stdout.readline().split()]
        assert workers and all(_alive(pid) for pid in workers)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers)
