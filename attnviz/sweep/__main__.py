"""``python -m attnviz.sweep <sweep dir>``: (re)write a sweep's summary.json, plot and index.html.

For a sweep whose launcher stopped before the end (a job killed by the scheduler, an interrupted session).
Exit code 1 when a job is not complete (failed, stopped early or never started). Imports no torch or
transformers: it runs on a login node.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import OmegaConf

from attnviz.files import INDEX_HTML
from attnviz.sweep.overrides import MULTIRUN_RECORD
from attnviz.sweep.summary import all_complete, expected_jobs, outcome, unfinished, write_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attnviz.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        print(f"error: {args.sweep_dir} is not a directory; pass a sweep directory (multirun/<date>/<time>)")
        return 2
    multirun = args.sweep_dir / MULTIRUN_RECORD  # the sweeper's record of the sweep
    expected = expected_jobs(OmegaConf.load(multirun)) if multirun.is_file() else None
    summary = write_summary(args.sweep_dir, expected)
    print(f"{outcome(summary)} -> {args.sweep_dir / INDEX_HTML}")
    if all_complete(summary):
        return 0
    for line in unfinished(summary):
        print(f"  {line}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
