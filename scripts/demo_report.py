"""The demo's study report: every demo sample replayed (teacher-forced on its stored answer) through the demo model
and through an untrained twin of the same shape, then ``python -m attnviz.report`` over both.

    python scripts/demo_report.py [--out outputs/demo_report] [--docs]

``--docs`` copies the report's plots into docs/ (the pictures the README and docs/metrics.md show). Offline, CPU,
about a minute. Prints the layer-3 figures of the answer's coordinate digits for both models.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import mean

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PLOTS = ("report_image_share.png", "report_position.png", "report_ground_truth.png")


def untrained_twin(folder: Path) -> Path:
    """The demo's shape and processor with seeded random weights (what the demo model was before training)."""
    import torch
    from transformers import Qwen2VLForConditionalGeneration

    from attnviz.demo import build

    processor = build.build_processor()
    torch.manual_seed(0)
    Qwen2VLForConditionalGeneration(build.build_config(processor.tokenizer)).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def run_all(out: Path, twin: Path) -> None:
    from hydra import compose, initialize_config_dir

    from attnviz.app import run
    from attnviz.config import PROJECT_ROOT
    from attnviz.data import read_samples

    count = len(read_samples(PROJECT_ROOT / "demo" / "data" / "demo.json"))
    models = {"demo": [], "untrained": [f"model.path={twin}", "model.name=untrained"]}
    with initialize_config_dir(version_base="1.3", config_dir=str(PROJECT_ROOT / "conf")):
        for name, settings in models.items():
            for idx in range(count):
                overrides = ["mode=replay", "capture.replay_key=solution", "video=draft", *settings,
                             f"sample_idx={idx}", f"output_dir={out / name / f'sample_{idx:03d}'}"]
                run(compose("config", overrides=overrides))


def summarise(csv_path: Path) -> None:
    with open(csv_path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["segment"] == "coords"]
    for model in ("demo", "untrained"):
        for layer in range(4):
            chosen = [r for r in rows if r["model"] == model and r["layer"] == str(layer)]
            print(f"{model:<10} layer {layer}: hit {mean(float(r['hit']) for r in chosen):.3f}  "
                  f"gt_share {mean(float(r['gt_share']) for r in chosen):.3f}  (n={len(chosen)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "demo_report")
    parser.add_argument("--docs", action="store_true", help="copy the report's plots into docs/")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        run_all(args.out, untrained_twin(Path(tmp) / "untrained"))
    subprocess.run([sys.executable, "-m", "attnviz.report", str(args.out)], cwd=ROOT, check=True)
    summarise(args.out / "metrics.csv")
    if args.docs:
        for name in PLOTS:
            shutil.copy(args.out / name, ROOT / "docs" / f"demo_{name}")


if __name__ == "__main__":
    main()
