"""The sweep summary: attention shares, every job listed with its status, the page, the plot, the exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from attnviz.analysis import mean_kind_shares
from attnviz.metadata import RunMetadata
from attnviz.sweep.callback import SweepSummary
from attnviz.sweep.overrides import BASIC_SWEEPER
from attnviz.sweep.plot import plot_image_share
from attnviz.sweep.summary import expected_jobs, write_summary
from attnviz.trace import Trace, load_trace, save_trace
from tests.test_sweep_cache import synthetic_trace

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def tiny_trace(seed: int = 0) -> Trace:
    """Prompt of 6 tokens (2 image, 3 text, 1 special), 3 generated; layers 0 and 1; rows sum to 1."""
    return synthetic_trace([0, 1], seed)


def stored_tiny_trace(directory: Path) -> Trace:
    """The tiny trace as the summary reads it: saved, then loaded (ragged rows, memory-mapped)."""
    save_trace(tiny_trace(), directory)
    return load_trace(directory)


def test_mean_kind_shares_by_token_kind_averaged_over_steps(tmp_path):
    trace = stored_tiny_trace(tmp_path / "trace")
    kinds = trace.token_kinds
    expected = {kind: 0.0 for kind in ("text", "image", "special")}
    for step in range(trace.n_steps):
        row = trace.row(0, step)
        for pos, weight in enumerate(row):
            expected[kinds[pos]] += weight / row.sum() / trace.n_steps
    got = mean_kind_shares(trace, 0)
    assert list(got) == ["image", "text", "special"]  # the page's column order
    assert got == pytest.approx(expected, abs=1e-6)
    assert sum(got.values()) == pytest.approx(1.0)
    # step 2 sees the generated text token at position 6, so text gets weight beyond the prompt's three
    assert got["image"] == pytest.approx(sum(trace.row(0, t)[1:3].sum() / trace.row(0, t).sum() for t in range(3)) / 3)


def _job_dir(sweep: Path, name: str, overrides: list[str]) -> Path:
    run_dir = sweep / name
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    return run_dir


def _complete(run_dir: Path, layer: int, generated: bool) -> None:
    save_trace(tiny_trace(), run_dir / "trace")
    video = f"combined_attention_visualization_layer{layer}.mp4"
    (run_dir / video).write_bytes(b"mp4")
    RunMetadata(
        status="complete", layer=layer, sample={"id": "s0"}, slurm_job_id="41",
        files={"video": video, "trace": "trace"}, timings={"render_s": 1.0}, trace_cache={"generated": generated},
        generated_text="(1,2)",
    ).save(run_dir)


def _failed(run_dir: Path, error: str) -> None:
    RunMetadata(status="failed", error=error, slurm_job_id=None).save(run_dir)


@pytest.fixture()
def sweep(tmp_path) -> Path:
    """Six planned jobs: two complete (one with a viewer page), one failed, one killed; two never started."""
    sweep = tmp_path / "sweep"
    _complete(_job_dir(sweep, "layer_idx=0,sample_idx=0", ["layer_idx=0", "sample_idx=0"]), 0, generated=True)
    done = _job_dir(sweep, "layer_idx=1,sample_idx=0", ["layer_idx=1", "sample_idx=0"])
    _complete(done, 1, generated=False)
    (done / "viewer.html").write_text("<html></html>")
    _failed(_job_dir(sweep, "layer_idx=0,sample_idx=9", ["layer_idx=0", "sample_idx=9"]), "AttnvizError: 9 is out")
    _job_dir(sweep, "layer_idx=1,sample_idx=9", ["layer_idx=1", "sample_idx=9"])  # killed before metadata
    _job_dir(sweep, "old_run", ["layer_idx=5"])  # an earlier sweep into the same folder: not listed
    return sweep


def _sweep_config(sweep: Path, task: tuple[str, ...] = ("layer_idx=0,1", "sample_idx=0,9,10")):
    return OmegaConf.create({
        "hydra": {"sweep": {"dir": str(sweep)}, "sweeper": {"_target_": BASIC_SWEEPER, "params": None},
                  "overrides": {"task": list(task)}},
        "reuse_traces": True, "trace_cache": None,
    })


def test_summary_lists_every_job_with_its_status_outputs_and_error(sweep, tmp_path):
    summary = write_summary(sweep, expected_jobs(_sweep_config(sweep)), wall_s=3.0)
    by_dir = {tuple(job["overrides"]): job for job in summary["jobs"]}
    assert len(by_dir) == summary["n_jobs"] == 6 and summary["n_complete"] == 2
    assert summary["n_failed"] == 1 and summary["n_incomplete"] == 3  # unfinished jobs are not failures
    assert summary["generate_calls"] == 1
    assert summary["status_counts"] == {"complete": 2, "failed": 1, "incomplete": 1, "not started": 2}
    first = by_dir[("layer_idx=0", "sample_idx=0")]
    assert first["params"] == {"layer_idx": "0", "sample_idx": "0"} and first["slurm_job_id"] == "41"
    assert first["sample_id"] == "s0" and first["generated_text"] == "(1,2)" and first["timings"] == {"render_s": 1.0}
    assert first["files"]["video"] == "layer_idx=0,sample_idx=0/combined_attention_visualization_layer0.mp4"
    assert first["files"]["viewer"] is None
    assert first["attention_share"] == pytest.approx(mean_kind_shares(stored_tiny_trace(tmp_path / "t"), 0))
    second = by_dir[("layer_idx=1", "sample_idx=0")]
    assert second["files"]["viewer"] == "layer_idx=1,sample_idx=0/viewer.html"
    assert by_dir[("layer_idx=0", "sample_idx=9")]["error"] == "AttnvizError: 9 is out"
    assert "no metadata.json" in by_dir[("layer_idx=1", "sample_idx=9")]["error"]
    assert by_dir[("layer_idx=0", "sample_idx=10")]["dir"] is None
    assert json.loads((sweep / "summary.json").read_text()) == json.loads(json.dumps(summary))

    page = (sweep / "index.html").read_text()
    assert page.count('href="layer_idx=') == 5  # 2 videos, 1 viewer, 2 metadata files
    assert 'href="layer_idx=1,sample_idx=0/viewer.html"' in page and "9 is out" in page
    assert "Not complete: 2 of 6 runs complete; 1 failed, 3 did not finish (1 incomplete, 2 not started)" in page
    assert page.index("image share") < page.index("text share") < page.index("special share")
    assert 'src="image_attention_share.png"' in page
    assert (sweep / "image_attention_share.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unreadable_metadata_counts_as_unfinished(tmp_path):
    sweep = tmp_path / "sweep"
    (_job_dir(sweep, "layer_idx=0", ["layer_idx=0"]) / "metadata.json").write_text('{"no": "status"}')
    summary = write_summary(sweep)
    assert summary["status_counts"] == {"unknown": 1}
    assert (summary["n_failed"], summary["n_incomplete"]) == (0, 1)
    assert "unreadable metadata.json" in summary["jobs"][0]["error"]


def test_without_a_sweep_record_every_run_directory_is_listed(sweep):
    summary = write_summary(sweep)
    assert summary["n_jobs"] == 5 and summary["n_complete"] == 2


def test_callback_plans_layers_and_exits_non_zero_when_a_job_did_not_complete(sweep, caplog):
    config = _sweep_config(sweep)
    callback = SweepSummary()
    callback.on_multirun_start(config)
    assert json.loads((sweep / ".traces" / "layers.json").read_text()) == {"layer_idx": [0, 1]}
    with pytest.raises(SystemExit) as exit_info:  # SystemExit passes through Hydra's callback error handling
        callback.on_multirun_end(config)
    assert exit_info.value.code == 1
    summary = json.loads((sweep / "summary.json").read_text())
    assert (summary["n_failed"], summary["n_incomplete"]) == (1, 3)
    assert "2 of 6 runs complete; 1 failed, 3 did not finish (1 incomplete, 2 not started)" in caplog.text
    assert "layer_idx=1,sample_idx=9: incomplete: no metadata.json" in caplog.text


def test_callback_exits_non_zero_when_jobs_only_did_not_finish(tmp_path, caplog):
    sweep = tmp_path / "sweep"
    _complete(_job_dir(sweep, "layer_idx=0", ["layer_idx=0"]), 0, generated=True)
    with pytest.raises(SystemExit) as exit_info:  # no job failed, one never started: still not a success
        SweepSummary().on_multirun_end(_sweep_config(sweep, ("layer_idx=0,1",)))
    assert exit_info.value.code == 1
    assert "1 of 2 runs complete; 0 failed, 1 did not finish (1 not started)" in caplog.text


def test_callback_returns_normally_when_every_job_completed(tmp_path):
    sweep = tmp_path / "sweep"
    _complete(_job_dir(sweep, "layer_idx=0", ["layer_idx=0"]), 0, generated=True)
    SweepSummary().on_multirun_end(_sweep_config(sweep, ("layer_idx=0",)))
    summary = json.loads((sweep / "summary.json").read_text())
    assert (summary["n_complete"], summary["n_failed"], summary["n_incomplete"]) == (1, 0, 0)
    assert "Not complete" not in (sweep / "index.html").read_text()


def test_summary_can_be_rebuilt_from_the_command_line(sweep, capsys):
    from attnviz.sweep.__main__ import main

    OmegaConf.save(_sweep_config(sweep), sweep / "multirun.yaml")  # what Hydra's basic sweeper leaves
    assert main([str(sweep)]) == 1  # jobs did not complete
    assert json.loads((sweep / "summary.json").read_text())["n_jobs"] == 6
    assert (sweep / "index.html").is_file()
    out = capsys.readouterr().out
    assert "1 failed, 3 did not finish" in out and "layer_idx=0,sample_idx=9: failed: AttnvizError: 9 is out" in out
    assert main([str(sweep / "nowhere")]) == 2


def test_the_plot_is_replaced_whole_or_not_at_all(sweep, monkeypatch):
    from matplotlib.figure import Figure

    summary = write_summary(sweep)
    plot = sweep / "image_attention_share.png"
    before = plot.read_bytes()

    def broken_savefig(self, file, **kwargs):
        file.write(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        plot_image_share(summary["jobs"], plot)
    assert plot.read_bytes() == before
    assert sorted(p.name for p in sweep.iterdir() if p.name.startswith(".")) == []  # no temp left behind


# Runs ``python -m attnviz.sweep`` and reports, at exit, which heavy modules it imported.
PROBE = (
    "import atexit, runpy, sys\n"
    "atexit.register(lambda: print('HEAVY', sorted(m for m in ('torch', 'transformers', 'matplotlib') "
    "if m in sys.modules)))\n"
    "sys.argv = ['python -m attnviz.sweep', sys.argv[1]]\n"
    "runpy.run_module('attnviz.sweep', run_name='__main__')\n"
)


@pytest.mark.parametrize(
    ("samples", "code", "n_complete", "heavy"),
    [
        ("0", 0, 2, ["matplotlib"]),  # every job complete: it draws the plot
        ("0,9", 1, 2, ["matplotlib"]),
        ("9", 1, 0, []),  # nothing to plot: not even matplotlib
    ],
)
def test_rebuilding_a_summary_imports_no_torch_or_transformers(tmp_path, samples, code, n_complete, heavy):
    sweep = tmp_path / "sweep"
    for layer in (0, 1):
        _complete(_job_dir(sweep, f"layer_idx={layer},sample_idx=0", [f"layer_idx={layer}", "sample_idx=0"]), layer,
                  generated=layer == 0)
        _failed(_job_dir(sweep, f"layer_idx={layer},sample_idx=9", [f"layer_idx={layer}", "sample_idx=9"]), "out")
    OmegaConf.save(_sweep_config(sweep, ("layer_idx=0,1", f"sample_idx={samples}")), sweep / "multirun.yaml")
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(sweep)], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == code, result.stderr[-3000:]
    assert f"HEAVY {heavy}" in result.stdout.splitlines(), result.stdout
    assert json.loads((sweep / "summary.json").read_text())["n_complete"] == n_complete
