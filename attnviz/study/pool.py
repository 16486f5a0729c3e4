"""A pool of render processes fed through a bounded queue, so generation never waits for rendering (until the
queue is full: then it waits, and memory stays bounded whatever the study's size).

Workers are started with ``spawn`` (a clean interpreter: no copy of the model, no CUDA or OpenMP state), import
only the model-free renderer, and exit on their own when the study's process dies (a SIGKILLed shard leaves no
renderer behind). When a worker dies mid-task (killed for memory) a new pool takes over and the
tasks it took down get one more try. ``workers=0`` renders in the calling process.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from attnviz.study.render import RenderResult, RenderTask, render_sample

log = logging.getLogger(__name__)
WATCH_S = 1.0  # how often a worker checks that the study's process is alive
NICE = 10  # render workers' scheduling priority below the generating process (ffmpeg, their child, inherits it)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_count(setting: int | None) -> int:
    """``render_workers``: None -> the cores left over beside the generating process, at least 1."""
    if setting is None:
        return max(1, available_cores() - 1)
    if setting < 0:
        from attnviz.errors import AttnvizError

        raise AttnvizError(f"render_workers={setting}: give 0 (render in the main process) or more, or null")
    return int(setting)


def _init_worker(parent: int) -> None:
    """No progress bars (the study has one), and exit when the parent is gone (a SIGKILLed study's workers would
    otherwise live on)."""
    from functools import partialmethod

    from tqdm import std

    std.tqdm.__init__ = partialmethod(std.tqdm.__init__, disable=True)  # type: ignore[method-assign]
    with contextlib.suppress(OSError):  # rendering takes the cycles generation leaves: it never slows it down
        os.nice(NICE)
    logging.basicConfig(level=logging.WARNING, format="[render %(process)d] %(levelname)s %(name)s: %(message)s")

    def watch() -> None:
        while True:
            time.sleep(WATCH_S)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def _warm_up() -> None:
    import attnviz.viewer.share_plot  # noqa: F401  (matplotlib: the slowest import of a render)


class RenderPool:
    """At most ``capacity`` tasks are queued or running; ``on_done`` gets every result, in the submitting thread
    (from ``submit``, ``poll`` or ``close``). When the queue is full, and at the end, the calling process renders
    too (``help``: the core that generated would otherwise wait idle), else ``submit`` waits."""

    def __init__(self, workers: int, capacity: int, on_done: Callable[[RenderResult], None],
                 render: Callable[[RenderTask], RenderResult] = render_sample, help: bool = True):
        """``render``: a module-level function (workers import it by name)."""
        self.workers, self.capacity, self.on_done, self.render = workers, max(1, capacity), on_done, render
        self.help = help
        self.pending: dict[Future, tuple[RenderTask, int]] = {}  # -> (task, the pool generation it went to)
        self.retried: set[int] = set()  # tasks resubmitted once after a worker died
        self.generation = 0
        self.executor = self._start() if workers > 0 else None

    def _start(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("spawn")
        executor = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker,
                                       initargs=(os.getpid(),))
        for _ in range(self.workers):  # start the workers and their imports now, while the model loads
            executor.submit(_warm_up)
        return executor

    def __enter__(self) -> RenderPool:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # stopping (an interrupt, a bug): queued tasks are dropped, the running ones finish or die with us
            self.shutdown(cancel=True)

    def depth(self) -> int:
        """Tasks queued or being rendered."""
        return len(self.pending)

    def submit(self, task: RenderTask) -> None:
        if self.executor is None:
            self.on_done(self.render(task))
            return
        self.poll()
        if len(self.pending) >= self.capacity and self.help:
            self.on_done(self.render(task))  # the queue is full: render this one here instead of waiting
            return
        while len(self.pending) >= self.capacity:
            self._collect(wait(self.pending, return_when=FIRST_COMPLETED).done)
        try:
            future = self.executor.submit(self.render, task)
        except BrokenProcessPool:
            self._restart()
            future = self.executor.submit(self.render, task)
        self.pending[future] = (task, self.generation)

    def poll(self) -> None:
        """Hand over the results that are ready, without waiting."""
        self._collect([f for f in self.pending if f.done()])

    def close(self) -> None:
        """Finish every task (with ``help``, this process renders the ones no worker has started), then stop."""
        while self.pending:
            queued = next((f for f in self.pending if self.help and f.cancel()), None)
            if queued is not None:
                task, _ = self.pending.pop(queued)
                self.on_done(self.render(task))
                self.poll()
            else:
                self._collect(wait(self.pending, return_when=FIRST_COMPLETED).done)
        self.shutdown()

    def shutdown(self, cancel: bool = False) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=not cancel, cancel_futures=cancel)
            self.executor = None

    def _collect(self, done) -> None:
        retry: list[RenderTask] = []
        restart = False
        for future in list(done):
            task, generation = self.pending.pop(future)
            try:
                result = future.result()
            except BrokenProcessPool:  # some worker died: every task it took down gets one more try
                restart |= generation == self.generation  # not a pool that was replaced already
                if task.index not in self.retried:
                    self.retried.add(task.index)
                    retry.append(task)
                    continue
                result = RenderResult(task.index, False, error="its render worker died twice (killed for memory?)")
            except Exception as err:  # a result that could not come back (unpicklable): the task failed
                result = RenderResult(task.index, False, error=f"{type(err).__name__}: {err}")
            self.on_done(result)
        if restart:
            self._restart()
        for task in retry:
            self.submit(task)

    def _restart(self) -> None:
        log.warning("a render worker died; starting the render pool again")
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor = self._start()
        self.generation += 1
