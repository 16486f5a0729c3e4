"""python -m attnviz.report on the command line: exit codes and their one line, options, reproducible output,
no model code and no plotting library imported (in a fresh process), many runs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attnviz.report import CSV_NAME, PLOT_NAMES, REPORT_NAME, Options, write_report
from attnviz.report.__main__ import main
from tests.conftest import PROJECT_ROOT
from tests.test_report import make_run, make_study, metrics

# Runs ``python -m attnviz.report`` and reports, at exit, which heavy modules it imported.
PROBE = (
    "import atexit, runpy, sys\n"
    "atexit.register(lambda: print('HEAVY', sorted(m for m in ('torch', 'transformers', 'hydra', 'omegaconf', "
    "'matplotlib') if m in sys.modules)))\n"
    "sys.argv = ['python -m attnviz.report', *sys.argv[1:]]\n"
    "runpy.run_module('attnviz.report', run_name='__main__')\n"
)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE, *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=120)


def _data(root: Path) -> dict:
    page = (root / REPORT_NAME).read_text(encoding="utf-8")
    start = page.index('<script type="application/json" id="report-data">') + len(
        '<script type="application/json" id="report-data">')
    return json.loads(page[start : page.index("</script>", start)])


def test_cli_imports_no_model_code_or_matplotlib_and_reports_skipped_files(tmp_path):
    root = make_study(tmp_path / "study")
    done = _cli(str(root), "--resamples", "100")
    assert done.returncode == 1, done.stderr  # one metrics.json was skipped
    heavy = next(line for line in done.stdout.splitlines() if line.startswith("HEAVY"))
    assert heavy == "HEAVY []"
    assert "15 runs, 14 samples" in done.stdout
    assert f"skipped {root / 'broken' / 'metrics.json'}: " in done.stderr
    assert all((root / name).is_file() for name in (CSV_NAME, REPORT_NAME, *PLOT_NAMES.values()))


@pytest.mark.parametrize("where", ["empty", "missing", "only_hidden"])
def test_nothing_to_report_is_one_line_and_exit_2(tmp_path, where):
    root = tmp_path / "folder"
    if where != "missing":
        root.mkdir()
    if where == "only_hidden":
        make_run(root, ".submitit/0", metrics("s"))
    done = _cli(str(root))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(root) in lines[0]
    assert not (root / REPORT_NAME).exists()


def test_all_unreadable_is_exit_2(tmp_path, capsys):
    make_run(tmp_path, "r", "{")
    assert main([str(tmp_path)]) == 2
    assert "none of the 1 metrics.json" in capsys.readouterr().err


def test_options_layers_layer_and_seed(tmp_path, capsys):
    for i in range(4):
        make_run(tmp_path, f"r{i}", metrics(f"s{i}", layers=range(6), image=0.2 + 0.05 * i))
    assert main(["--layers", "1,3,5", str(tmp_path), "--layer", "4", "--resamples", "100"]) == 0
    data = _data(tmp_path)
    assert data["series"]["position_layers"] == [1, 3, 5] and {r["layer"] for r in data["rows"]} == {4}
    assert "at layer 4 (--layer)" in data["table_note"]
    first = _data(tmp_path)["series"]["image_share"]
    assert main([str(tmp_path), "--resamples", "100", "--seed", "7"]) == 0
    other = _data(tmp_path)["series"]["image_share"]
    assert other[0]["mean"] == first[0]["mean"] and other[0]["low"] != first[0]["low"]
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--layers", "x"])
    assert "layers are integers" in capsys.readouterr().err


def test_the_same_folder_gives_the_same_files(tmp_path):
    root = make_study(tmp_path)
    write_report(root, Options(resamples=100))
    before = {name: (root / name).read_bytes() for name in (CSV_NAME, REPORT_NAME, *PLOT_NAMES.values())}
    write_report(root, Options(resamples=100))
    assert all((root / name).read_bytes() == data for name, data in before.items())
    assert not list(root.glob(".*.tmp"))


def test_a_broken_id_and_model_survive_the_round_trip(tmp_path):
    make_run(tmp_path, "r", metrics("\ud800 lone", "m\udfff"))  # a lone surrogate: a broken token in the id
    written = write_report(tmp_path, Options(resamples=50))
    assert written.study.table[0]["id"] == "\ud800 lone"
    assert "\\ud800 lone" in (tmp_path / CSV_NAME).read_text(encoding="utf-8")
    assert _data(tmp_path)["rows"][0]["id"] == "\ud800 lone"


def test_many_runs_stream_quickly(tmp_path):
    """500 runs of 12 layers: one pass, a few seconds (most of it the CSV's 78 000 lines)."""
    text = json.dumps(metrics("x", layers=range(12)))
    for i in range(500):
        run = tmp_path / f"job{i // 100}" / str(i)
        run.mkdir(parents=True)
        (run / "metrics.json").write_text(text.replace('"x"', f'"s{i}"', 1), encoding="utf-8")
    start = time.perf_counter()
    written = write_report(tmp_path, Options(resamples=200))
    assert time.perf_counter() - start < 20  # ~3 s on two busy cores
    assert written.study.samples == 500 and len(written.study.table) == 500
    with open(tmp_path / CSV_NAME, encoding="utf-8") as f:
        assert sum(1 for _ in f) == 1 + 500 * 12 * 13
