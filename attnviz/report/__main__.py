"""``python -m attnviz.report <dir>``: metrics.csv, the plots and report.html for every run under ``dir`` (and
compare.csv with a comparison section for the comparison jobs under it).

Exit 0 when every metrics.json (and every sample's compare.json) was read, 1 when some were skipped (the report
covers the others; each skipped file is named in a warning and counted on the page), 2 when there is nothing to
report or the folder cannot be written. Imports no torch, transformers or matplotlib: it runs on a login node.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from attnviz.report.build import CSV_NAME, NoMetrics, Options, write_report
from attnviz.report.collect import COMPARE_CSV
from attnviz.report.page import REPORT_NAME
from attnviz.report.stats import RESAMPLES, SEED


def _layers(text: str) -> list[int]:
    try:
        return [int(part) for part in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: layers are integers, e.g. 4,12,20") from None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m attnviz.report",
        description="Write metrics.csv, the plots and report.html for every run under DIR that holds a metrics.json.")
    parser.add_argument("dir", type=Path, metavar="DIR", help="a study, a multirun folder or any folder of runs")
    parser.add_argument("--layers", type=_layers, default=None, metavar="L,L,...",
                        help="layers of the position plot, e.g. 4,12,20 (default: four spread over the depth)")
    parser.add_argument("--layer", type=int, default=None,
                        help="the table's layer (default: each run's rendered layer, from metadata.json)")
    parser.add_argument("--resamples", type=int, default=RESAMPLES, help=f"bootstrap resamples ({RESAMPLES})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"bootstrap seed ({SEED})")
    args = parser.parse_args(argv)
    if args.resamples < 1:
        parser.error("--resamples must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    layers = tuple(sorted(set(args.layers))) if args.layers else None
    try:
        written = write_report(args.dir, Options(layers=layers, layer=args.layer, resamples=args.resamples,
                                                 seed=args.seed))
    except NoMetrics as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: cannot write the report into {args.dir}: {err}", file=sys.stderr)
        return 2
    study = written.study
    print(f"{_count(len(study.table), 'run')}, {_count(study.samples, 'sample')} -> {args.dir / REPORT_NAME} and "
          f"{args.dir / CSV_NAME}")
    for comp in written.comparisons:
        print(f"comparison of {', '.join(comp.job.key.labels[1:])} against {comp.reference}: "
              f"{_count(comp.samples, 'sample')} -> {args.dir / COMPARE_CSV}")
    if study.skipped:
        print(f"{len(study.skipped)} metrics.json skipped (named in the warnings above)", file=sys.stderr)
    if written.compare_skipped:
        print(f"{written.compare_skipped} compare.json skipped (named in the warnings above)", file=sys.stderr)
    return 1 if study.skipped or written.compare_skipped else 0


if __name__ == "__main__":
    sys.exit(main())
