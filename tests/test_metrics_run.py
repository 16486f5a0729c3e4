"""A run writes metrics.json for every layer, keeps rows only for the layers it renders, and says whether the answer
was right."""

from __future__ import annotations

import json

import numpy as np

from attnviz.app import run
from attnviz.metadata import RunMetadata
from attnviz.trace import load_trace

SMALL = ("video.width=320", "video.height=180")


def test_a_run_measures_every_layer_keeps_the_rendered_rows_and_scores_the_answer(compose_cfg, tmp_path):
    run(compose_cfg(*SMALL, "sample_idx=0"))
    meta = RunMetadata.load(tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert meta.correct is True and metrics["correct"] is True and metrics["model"] == "demo"
    assert metrics["layers"] == [0, 1, 2, 3] and metrics["has_regions"] is True
    assert load_trace(tmp_path).layers == [3]  # layers 0-2 were measured, then their rows dropped
    assert meta.files["metrics"] == "metrics.json" and meta.files["metrics_steps"] == "metrics_steps.npz"
    rows = {(r["layer"], r["segment"]): r for r in metrics["rows"]}
    assert rows[(3, "coords")]["hit"] == 1.0 and rows[(3, "coords")]["gt_share"] > 0.9  # the taught layer
    assert rows[(3, "all")]["n_tokens"] == metrics["n_tokens"] == meta.n_generated
    steps = np.load(tmp_path / "metrics_steps.npz")
    assert steps["image_share"].shape == (4, meta.n_generated) and steps["layers"].tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(np.nanmean(steps["image_share"][3]), rows[(3, "all")]["image_share"], rtol=1e-5)


def test_metrics_of_the_captured_layers_only_or_none(compose_cfg, tmp_path):
    run(compose_cfg(*SMALL, "metrics.layers=null", "capture.layers=[1]", f"output_dir={tmp_path / 'a'}"))
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["layers"] == [1, 3]
    assert load_trace(tmp_path / "a").layers == [1, 3]
    run(compose_cfg(*SMALL, "metrics.enabled=false", "scorer=points", f"output_dir={tmp_path / 'b'}"))
    assert not (tmp_path / "b" / "metrics.json").exists()
    assert RunMetadata.load(tmp_path / "b").correct is True  # scored all the same


def test_a_wrong_answer_is_scored_false_and_no_ground_truth_is_null(compose_cfg, tmp_path):
    run(compose_cfg(*SMALL, "scorer.key=problem", f"output_dir={tmp_path / 'wrong'}"))
    assert RunMetadata.load(tmp_path / "wrong").correct is False
    run(compose_cfg(*SMALL, "scorer.key=no_such_field", f"output_dir={tmp_path / 'none'}"))
    assert RunMetadata.load(tmp_path / "none").correct is None


def test_the_generic_baseline_gives_relative_metrics_and_the_relative_image_mode(compose_cfg, tmp_path):
    from attnviz.errors import AttnvizError

    run(compose_cfg(*SMALL, "metrics.baseline=generic", "render.image_weights=relative", "sample_idx=3"))
    trace = load_trace(tmp_path)
    assert sorted(trace.baseline) == [0, 1, 2, 3] and trace.baseline[3].shape == (64,)
    np.testing.assert_allclose(trace.baseline[3].sum(), 1.0, rtol=1e-5)
    rows = {(r["layer"], r["segment"]): r for r in json.loads((tmp_path / "metrics.json").read_text())["rows"]}
    assert rows[(3, "coords")]["relative_hit"] == 1.0 and rows[(3, "all")]["relative_top_share"] is not None
    assert (tmp_path / "combined_attention_visualization_layer3.mp4").stat().st_size > 0
    plain = tmp_path / "plain"
    run(compose_cfg(*SMALL, f"output_dir={plain}", "sample_idx=3"))
    assert load_trace(plain).baseline == {} and rows[(3, "all")]["n_tokens"] > 0
    with np.testing.assert_raises(AttnvizError):
        run(compose_cfg(*SMALL, f"render_only={plain}", f"output_dir={tmp_path / 'again'}",
                        "render.image_weights=relative"))


def test_a_rerender_elsewhere_keeps_the_runs_metrics(compose_cfg, tmp_path):
    """render_only into another folder carries the source run's metrics, so a report over that folder finds them."""
    from attnviz.outputs import read_metadata

    run(compose_cfg(*SMALL, "sample_idx=1"))
    again = tmp_path / "again"
    run(compose_cfg(*SMALL, f"render_only={tmp_path}", f"output_dir={again}", "render.colormap=viridis"))
    for name in ("metrics.json", "metrics_steps.npz"):
        assert (again / name).read_bytes() == (tmp_path / name).read_bytes()
    files = read_metadata(again)["files"]
    assert files["metrics"] == "metrics.json" and files["metrics_steps"] == "metrics_steps.npz"
