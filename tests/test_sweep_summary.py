"""The sweep summary: attention shares, every job listed with its status, the page, the plot, the exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from attnviz.outputs import write_json_atomic
from attnviz.sweep.callback import SweepSummary
from attnviz.sweep.summary import attention_share, expected_jobs, write_summary
from attnviz.trace import save_trace
from tests.test_sweep_cache import synthetic_trace

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def test_attention_share_by_token_kind_averaged_over_steps():
    trace = synthetic_trace([0])
    kinds = trace.token_kinds
    expected = {kind: 0.0 for kind in ("text", "image", "special")}
    for step in range(trace.n_steps):
        row = trace.rows[0][step, : trace.prompt_len + step]
        for pos, weight in enumerate(row):
            expected[kinds[pos]] += weight / row.sum() / trace.n_steps
    got = attention_share(trace, 0)
    assert got == pytest.approx(expected, abs=1e-6)
    assert sum(got.values()) == pytest.approx(1.0)
    # step 2 sees the generated text token at position 6, so text gets weight beyond the prompt's three
    assert got["image"] == pytest.approx(
        sum(trace.rows[0][t, 1:3].sum() / trace.rows[0][t].sum() for t in range(3)) / 3, abs=1e-6
    )


def _job_dir(sweep: Path, name: str, overrides: list[str]) -> Path:
    run_dir = sweep / name
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    return run_dir


def _complete(run_dir: Path, layer: int, generated: bool) -> None:
    save_trace(synthetic_trace([0, 1]), run_dir / "trace")
    (run_dir / f"combined_attention_visualization_layer{layer}.mp4").write_bytes(b"mp4")
    meta = {"status": "complete", "layer": layer, "sample": {"id": "s0"}, "slurm_job_id": "41",
            "files": {"video": f"combined_attention_visualization_layer{layer}.mp4", "trace": "trace"},
            "timings": {"render_s": 1.0}, "trace_cache": {"generated": generated}, "generated_text": "(1,2)"}
    write_json_atomic(run_dir / "metadata.json", meta)


@pytest.fixture()
def sweep(tmp_path) -> Path:
    """Four planned jobs: two complete (one with a viewer page), one failed, one killed; one never started."""
    sweep = tmp_path / "sweep"
    _complete(_job_dir(sweep, "layer_idx=0,sample_idx=0", ["layer_idx=0", "sample_idx=0"]), 0, generated=True)
    done = _job_dir(sweep, "layer_idx=1,sample_idx=0", ["layer_idx=1", "sample_idx=0"])
    _complete(done, 1, generated=False)
    (done / "viewer.html").write_text("<html></html>")
    failed = _job_dir(sweep, "layer_idx=0,sample_idx=9", ["layer_idx=0", "sample_idx=9"])
    write_json_atomic(failed / "metadata.json", {"status": "failed", "error": "AttnvizError: sample_idx=9 is out"})
    _job_dir(sweep, "layer_idx=1,sample_idx=9", ["layer_idx=1", "sample_idx=9"])  # killed before metadata
    _job_dir(sweep, "old_run", ["layer_idx=5"])  # an earlier sweep into the same folder: not listed
    return sweep


def _sweep_config(sweep: Path):
    return OmegaConf.create({
        "hydra": {"sweep": {"dir": str(sweep)}, "sweeper": {"_target_": BASIC_SWEEPER, "params": None},
                  "overrides": {"task": ["layer_idx=0,1", "sample_idx=0,9,10"]}},
        "reuse_traces": True, "trace_cache": None,
    })


def test_summary_lists_every_job_with_its_status_outputs_and_error(sweep):
    summary = write_summary(sweep, expected_jobs(_sweep_config(sweep)), wall_s=3.0)
    by_dir = {tuple(job["overrides"]): job for job in summary["jobs"]}
    assert len(by_dir) == summary["n_jobs"] == 6 and summary["n_complete"] == 2 and summary["n_failed"] == 4
    assert summary["generate_calls"] == 1
    assert summary["status_counts"] == {"complete": 2, "failed": 1, "incomplete": 1, "not started": 2}
    first = by_dir[("layer_idx=0", "sample_idx=0")]
    assert first["params"] == {"layer_idx": "0", "sample_idx": "0"} and first["slurm_job_id"] == "41"
    assert first["files"]["video"] == "layer_idx=0,sample_idx=0/combined_attention_visualization_layer0.mp4"
    assert first["files"]["viewer"] is None
    assert first["attention_share"] == pytest.approx(attention_share(synthetic_trace([0, 1]), 0))
    second = by_dir[("layer_idx=1", "sample_idx=0")]
    assert second["files"]["viewer"] == "layer_idx=1,sample_idx=0/viewer.html"
    assert by_dir[("layer_idx=0", "sample_idx=9")]["error"] == "AttnvizError: sample_idx=9 is out"
    assert "no metadata.json" in by_dir[("layer_idx=1", "sample_idx=9")]["error"]
    assert by_dir[("layer_idx=0", "sample_idx=10")]["dir"] is None
    assert json.loads((sweep / "summary.json").read_text()) == json.loads(json.dumps(summary))

    page = (sweep / "index.html").read_text()
    assert page.count('href="layer_idx=') == 5  # 2 videos, 1 viewer, 2 metadata files
    assert 'href="layer_idx=1,sample_idx=0/viewer.html"' in page and "sample_idx=9 is out" in page
    assert 'src="image_attention_share.png"' in page
    assert (sweep / "image_attention_share.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_a_sweep_record_every_run_directory_is_listed(sweep):
    summary = write_summary(sweep)
    assert summary["n_jobs"] == 5 and summary["n_complete"] == 2


def test_callback_plans_layers_and_exits_non_zero_when_a_job_did_not_complete(sweep):
    config = _sweep_config(sweep)
    callback = SweepSummary()
    callback.on_multirun_start(config)
    assert json.loads((sweep / ".traces" / "layers.json").read_text()) == {"layer_idx": [0, 1]}
    with pytest.raises(SystemExit) as exit_info:  # SystemExit passes through Hydra's callback error handling
        callback.on_multirun_end(config)
    assert exit_info.value.code == 1
    assert json.loads((sweep / "summary.json").read_text())["n_failed"] == 4


def test_callback_returns_normally_when_every_job_completed(tmp_path):
    sweep = tmp_path / "sweep"
    _complete(_job_dir(sweep, "layer_idx=0", ["layer_idx=0"]), 0, generated=True)
    config = _sweep_config(sweep)
    config.hydra.overrides.task = ["layer_idx=0"]
    SweepSummary().on_multirun_end(config)
    assert json.loads((sweep / "summary.json").read_text())["n_complete"] == 1


def test_summary_can_be_rebuilt_from_the_command_line(sweep):
    from attnviz.sweep.__main__ import main

    OmegaConf.save(_sweep_config(sweep), sweep / "multirun.yaml")  # what Hydra's basic sweeper leaves
    assert main([str(sweep)]) == 1  # jobs did not complete
    assert json.loads((sweep / "summary.json").read_text())["n_jobs"] == 6
    assert (sweep / "index.html").is_file()
    assert main([str(sweep / "nowhere")]) == 2
