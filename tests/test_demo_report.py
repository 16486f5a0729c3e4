"""Proof on the demo: the study report shows what the demo model is known to do. The taught layer (3) puts its
attention on the marker's cell when it writes the answer's digits; an untrained twin of the same shape, reading the
same answers, is at chance. Asserted from the report's own metrics.csv."""

from __future__ import annotations

import csv
import subprocess
import sys
from statistics import mean

import pytest

from attnviz.app import run
from tests.conftest import PROJECT_ROOT

SAMPLES = range(8)  # one-image demo samples
REPLAY = ("mode=replay", "capture.replay_key=solution", "video.width=320", "video.height=180")


def coords_rows(path, model: str, layer: int) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r["model"] == model and r["layer"] == str(layer)
                and r["segment"] == "coords"]


@pytest.mark.slow
def test_the_report_shows_the_taught_layer_on_the_marker_and_the_untrained_twin_at_chance(
    compose_cfg, tmp_path, tiny_qwen2vl_dir
):
    models = {"demo": [], "untrained": [f"model.path={tiny_qwen2vl_dir}", "model.name=untrained"]}
    for name, settings in models.items():
        for idx in SAMPLES:
            run(compose_cfg(*REPLAY, *settings, f"sample_idx={idx}", f"output_dir={tmp_path / name / str(idx)}"))
    done = subprocess.run([sys.executable, "-m", "attnviz.report", str(tmp_path)], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    trained = coords_rows(tmp_path / "metrics.csv", "demo", 3)
    untrained = coords_rows(tmp_path / "metrics.csv", "untrained", 3)
    assert len(trained) == len(untrained) == len(SAMPLES)
    assert mean(float(r["hit"]) for r in trained) >= 0.9
    assert mean(float(r["gt_share"]) for r in trained) >= 0.5
    # chance: the marker's cell is 1 of 64; near-uniform rows still peak on the most distinctive cell now and then
    assert mean(float(r["gt_share"]) for r in untrained) < 0.05
    assert mean(float(r["hit"]) for r in untrained) <= 0.35
    assert all(r["correct"] == "true" for r in trained)
    assert (tmp_path / "report.html").stat().st_size > 0
