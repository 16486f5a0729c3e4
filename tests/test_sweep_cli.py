"""A real sweep from the command line: local parallel workers, a failing job, the summary, skip_existing."""

from __future__ import annotations

import json

import pytest

from tests.test_cli import _cli

SMALL = ("video.width=320", "video.height=180")
LOG = "layer_idx={layer},sample_idx={sample}"  # swept values only: video.* is the same for every run


def _statuses(summary: dict) -> dict[tuple[str, str], str]:
    return {(j["params"]["layer_idx"], j["params"]["sample_idx"]): j["status"] for j in summary["jobs"]}


@pytest.mark.slow
def test_parallel_sweep_survives_a_failing_job_and_reports_it(tmp_path):
    sweep = tmp_path / "sweep"
    first = _cli(
        "-m", "hydra/launcher=local_workers", "layer_idx=0,1", "sample_idx=0,999", *SMALL,
        f"hydra.sweep.dir={sweep}", cwd=tmp_path,
    )
    assert first.returncode == 1, first.stderr[-3000:]  # the summary callback fails the sweep
    summary = json.loads((sweep / "summary.json").read_text())
    assert _statuses(summary) == {
        ("0", "0"): "complete", ("1", "0"): "complete", ("0", "999"): "failed", ("1", "999"): "failed"
    }
    assert summary["generate_calls"] == 1  # two workers, one sample: one generation
    for job in summary["jobs"]:
        if job["status"] == "failed":
            assert "sample_idx=999 is out of range" in job["error"]
        else:
            assert job["dir"] == LOG.format(layer=job["params"]["layer_idx"], sample=0)
            assert (sweep / job["files"]["video"]).stat().st_size > 0
            assert 0 < job["attention_share"]["image"] < 1
    page = (sweep / "index.html").read_text()
    assert all(f'href="{job["files"]["video"]}"' in page for job in summary["jobs"] if job["status"] == "complete")
    assert (sweep / "image_attention_share.png").is_file()

    # Re-running the complete part with skip_existing touches nothing and succeeds.
    metadata = [sweep / LOG.format(layer=layer, sample=0) / "metadata.json" for layer in (0, 1)]
    before = [path.stat().st_mtime_ns for path in metadata]
    again = _cli("-m", "layer_idx=0,1", "sample_idx=0", *SMALL, "skip_existing=true", f"hydra.sweep.dir={sweep}",
                 cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [path.stat().st_mtime_ns for path in metadata] == before
    assert "skip_existing" in again.stdout + again.stderr
    assert json.loads((sweep / "summary.json").read_text())["n_complete"] == 2



def test_basic_launcher_runs_every_job_and_exits_non_zero(tmp_path):
    """Hydra's default launcher stops at a job's exception; attnviz records the failure and goes on."""
    sweep = tmp_path / "sweep"
    result = _cli("-m", "sample_idx=998,999", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 1
    summary = json.loads((sweep / "summary.json").read_text())
    assert [job["status"] for job in summary["jobs"]] == ["failed", "failed"]  # the second ran after the first failed
    for job in summary["jobs"]:
        meta = json.loads((sweep / job["dir"] / "metadata.json").read_text())
        assert meta["status"] == "failed"
        assert f"sample_idx={job['params']['sample_idx']} is out of range" in meta["error"]
    assert summary["files"]["plot"] is None and not (sweep / "image_attention_share.png").exists()
    output = result.stdout + result.stderr
    assert "sample_idx=999 is out of range" in output and "Traceback" not in output  # one line per failure
