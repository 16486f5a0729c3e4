"""Hydra callbacks that guard a run before Hydra touches the disk.

Hydra creates the run (or sweep) directory before it calls attnviz; a folder that cannot be created (a path below
an existing file, a read-only disk) would end in Hydra's traceback. This callback makes it one line and exit 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from attnviz.errors import one_line


def output_dir_problem(folder: str | Path, key: str) -> str | None:
    """None when ``folder`` exists or can be created, else the one-line message naming ``key`` and the fix."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        where = f" ({err.filename})" if err.filename and str(err.filename) != str(folder) else ""
        reason = one_line(err.strerror or str(err))
        return f"cannot create the output folder {folder}: {reason}{where}; set {key} to a folder you can write"
    return None


def _exit_on_problem(folder: str | Path, key: str) -> None:
    problem = output_dir_problem(folder, key)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        # SystemExit is not an Exception: Hydra's callback runner lets it through, so the exit code is 2
        sys.exit(2)


class OutputDirCheck(Callback):
    """Registered in conf/config.yaml (hydra.callbacks)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        # output_dir itself is checked by the run, which names it in the same one-line form
        _exit_on_problem(config.hydra.run.dir, "hydra.run.dir (or output_dir)")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _exit_on_problem(config.hydra.sweep.dir, "hydra.sweep.dir")
