"""``python -m attnviz.study <sweep dir>``: (re)write the merged study index of a multirun of study jobs (e.g. one
whose launcher stopped before the end). Exit 1 when a sample is not complete. Imports no torch or transformers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from attnviz.study.merge import write_merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attnviz.study", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--jobs", type=int, default=None, help="jobs the multirun launched (missing ones count)")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        print(f"error: {args.sweep_dir} is not a directory; pass a multirun's sweep directory")
        return 2
    data = write_merged(args.sweep_dir, args.jobs)
    print(f"{data['n_complete']} of {data['n_samples']} samples complete, {data['n_failed']} failed, "
          f"{data['n_jobs']} job(s) -> {args.sweep_dir / 'index.html'}")
    for entry in data["samples"]:
        if entry["status"] != "complete":
            print(f"  {entry['dir']}: {entry['status']}: {entry.get('error')}")
    return 0 if data["status"] == "complete" else 1


if __name__ == "__main__":
    sys.exit(main())
