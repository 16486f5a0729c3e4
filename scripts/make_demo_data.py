"""Write the demo dataset in Reason-RFT's format: demo/data/demo.json + demo/data/images/*.png.

    python scripts/make_demo_data.py                 # 12 one-image + 4 two-image samples, seed 7

Image paths in the JSON are relative to demo/data/. One-image samples alternate between the two forms the
format allows ("image": "images/x.png" and "image": ["images/x.png"]).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from attnviz.demo import synth

log = logging.getLogger("make_demo_data")
DEMO_SEED = 7


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("demo/data"))
    parser.add_argument("--n", type=int, default=12, help="one-image samples")
    parser.add_argument("--n-two", type=int, default=4, help="two-image samples")
    parser.add_argument("--seed", type=int, default=DEMO_SEED)
    return parser.parse_args()


def record(sample_id: str, sample: synth.Sample, paths: list[str], as_list: bool) -> dict:
    """One Reason-RFT entry; `solution` is the full assistant text the model was trained to write."""
    return {
        "id": sample_id,
        "image": paths if as_list or len(paths) > 1 else paths[0],
        "problem": sample.problem,
        "solution": sample.solution,
        "answer": sample.answer,
    }


def write_dataset(out: Path, n_one: int, n_two: int, seed: int) -> list[dict]:
    (out / "images").mkdir(parents=True, exist_ok=True)
    samples = synth.make_samples(seed, n_one) + synth.make_samples(seed + 1, n_two, n_images=2)
    entries = []
    for i, sample in enumerate(samples):
        sample_id = f"demo_{i:03d}"
        paths = []
        for k, image in enumerate(sample.images):
            rel = f"images/{sample_id}_{k}.png"
            image.save(out / rel, optimize=True)
            paths.append(rel)
        entries.append(record(sample_id, sample, paths, as_list=i % 2 == 0))
    (out / "demo.json").write_text(json.dumps(entries, indent=2) + "\n")
    return entries


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    entries = write_dataset(args.out, args.n, args.n_two, args.seed)
    log.info("wrote %d samples to %s", len(entries), args.out / "demo.json")


if __name__ == "__main__":
    main()
