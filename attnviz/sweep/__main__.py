"""``python -m attnviz.sweep <sweep dir>``: (re)write a sweep's summary.json, plot and index.html.

For a sweep whose launcher stopped before the end (a job killed by the scheduler, an interrupted session).
Exit code 1 when a job is not complete.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import OmegaConf

from attnviz.sweep.summary import expected_jobs, write_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attnviz.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        print(f"error: {args.sweep_dir} is not a directory; pass a sweep directory (multirun/<date>/<time>)")
        return 2
    multirun = args.sweep_dir / "multirun.yaml"  # the basic sweeper's record of the sweep
    expected = expected_jobs(OmegaConf.load(multirun)) if multirun.is_file() else None
    summary = write_summary(args.sweep_dir, expected)
    print(f"{summary['n_complete']} of {summary['n_jobs']} runs complete -> {args.sweep_dir / 'index.html'}")
    return 0 if summary["n_failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
