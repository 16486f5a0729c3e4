"""python -m attnviz.report, reading side: fabricated runs (metrics.json written here, as the metrics writer does)
-> metrics.csv values, empty cells and the correct column; skipped files; duplicates; links. The helpers here
build the study the other report tests use."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from attnviz.files import video_name
from attnviz.metadata import COMPLETE, ModelInfo, RunMetadata
from attnviz.report import CSV_NAME, PLOT_NAMES, REPORT_NAME, NoMetrics, Options, write_report
from attnviz.report.aggregate import natural_key
from attnviz.report.collect import CSV_COLUMNS, POSITIONS, UnreadableMetrics, csv_lines, find_runs, parse_metrics
from attnviz.report.plots import legend_names

XSS_ID = "<script>window.__pwned=1</script><img src=x onerror=alert(1)>"
ODD_DIR = "b/javascript:no region #1?%41"  # a folder name that must stay a relative path in a link
LAYERS = (0, 1, 2, 3)


def metrics(sample_id: str, model: str = "demo", correct: bool | None = True, *, layers=LAYERS, regions=True,
            image: float = 0.4, positions: int = 10, **extra) -> dict:
    """A format-1 metrics.json: image share ``image + 0.05·layer`` (segment all), rising over the position bins."""
    rows = []
    for layer in layers:
        share = min(image + 0.05 * layer, 0.9)
        segments = [("all", 22, share), ("think", 12, share - 0.1), ("answer", 10, share + 0.1)]
        segments += [(POSITIONS[b], 2, share - 0.09 + 0.02 * b) for b in range(positions)]
        for segment, n, s in segments:
            rows.append({
                "layer": layer, "segment": segment, "n_tokens": n, "image_share": round(s, 6), "image_shares": [s],
                "text_share": 0.2, "answer_share": 0.1, "sink_share": round(0.8 - s - 0.1, 6),
                "image_share_nosink": 0.57, "image_entropy": 0.8, "top_share": 0.3,
                "gt_share": min(0.5 + 0.1 * layer, 1.0) if regions else None,
                "hit": min(0.25 * layer, 1.0) if regions else None,
            })
    return {"format": 1, "sample_id": sample_id, "model": model, "correct": correct, "n_tokens": 22,
            "layers": list(layers), "n_images": 1, "has_regions": regions, "rows": rows, **extra}


def make_run(root: Path, rel: str, data: dict | str, *, layer: int | None = 2, files: bool = True) -> Path:
    """A run directory: metrics.json (a dict, or raw text), metadata.json, and (``files``) its viewer and video."""
    run_dir = root / rel
    run_dir.mkdir(parents=True, exist_ok=True)
    text = data if isinstance(data, str) else json.dumps(data)
    (run_dir / "metrics.json").write_text(text, encoding="utf-8")
    sample = data.get("sample_id", "") if isinstance(data, dict) else ""
    model = ModelInfo(path=data.get("model", "m") if isinstance(data, dict) else "m", family="qwen2_vl",
                      device="cpu", dtype="float32", num_layers=4)
    names = {"video": video_name(layer if layer is not None else 0), "viewer": "viewer.html"}
    RunMetadata(status=COMPLETE, model=model, sample={"id": sample}, layer=layer, files=names).save(run_dir)
    if files:
        for name in names.values():
            (run_dir / name).write_text("stand-in", encoding="utf-8")
    return run_dir


def make_study(root: Path) -> Path:
    """Two models, correct / incorrect / unknown answers, one sample without regions, one hostile id, one broken
    metrics.json, a hidden folder and a repeated run (a layer sweep over one trace)."""
    for i in range(6):
        make_run(root, f"a/{i}", metrics(f"s{i}", "ckpt/step_200", correct=i % 2 == 0, image=0.3 + 0.02 * i))
        make_run(root, f"b/{i}", metrics(f"s{i}", "ckpt/step_1000", correct=i < 4, image=0.5 + 0.02 * i))
    make_run(root, ODD_DIR, metrics("noregion", "ckpt/step_1000", correct=None, regions=False))
    make_run(root, "b/xss", metrics(XSS_ID, "ckpt/step_1000", correct=False), files=False)
    make_run(root, "a/0-layer3", metrics("s0", "ckpt/step_200", correct=True, image=0.3), layer=3)
    make_run(root, "broken", "{not json")
    make_run(root, ".traces/hidden", metrics("hidden"))
    return root


def read_csv(root: Path) -> list[dict[str, str]]:
    with open(root / CSV_NAME, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, object]:
    root = make_study(tmp_path_factory.mktemp("study"))
    return root, write_report(root, Options(resamples=200))


def test_runs_are_found_in_sorted_order_and_hidden_folders_skipped(study):
    root, _ = study
    found = [p.relative_to(root).as_posix() for p in find_runs(root)]
    assert found == sorted(found) and ".traces/hidden" not in found and len(found) == 16


def test_csv_is_one_row_per_sample_layer_and_segment(study):
    root, written = study
    rows = read_csv(root)
    assert tuple(rows[0]) == CSV_COLUMNS
    per_run = len(LAYERS) * (3 + len(POSITIONS))
    assert len(rows) == 14 * per_run  # 15 readable runs, one of them a repeat
    assert {r["run_dir"] for r in rows} == {*(f"a/{i}" for i in range(6)), *(f"b/{i}" for i in range(6)),
                                            ODD_DIR, "b/xss"}
    row = next(r for r in rows if r["run_dir"] == "a/1" and r["layer"] == "2" and r["segment"] == "all")
    assert row["sample_id"] == "s1" and row["model"] == "ckpt/step_200" and row["correct"] == "false"
    assert float(row["image_share"]) == pytest.approx(0.32 + 0.1) and row["n_tokens"] == "22"
    assert float(row["gt_share"]) == pytest.approx(0.7) and float(row["hit"]) == pytest.approx(0.5)
    assert {r["correct"] for r in rows if r["run_dir"] == "a/0"} == {"true"}


def test_csv_cells_are_empty_where_a_value_does_not_apply(study):
    root, _ = study
    rows = [r for r in read_csv(root) if r["run_dir"] == ODD_DIR]
    assert rows and all(r["gt_share"] == "" and r["hit"] == "" and r["correct"] == "" for r in rows)
    assert all(r["image_share"] != "" for r in rows)
    xss = next(r for r in read_csv(root) if r["run_dir"] == "b/xss")
    assert xss["sample_id"] == XSS_ID  # quoted by the csv module, read back whole


def test_csv_lines_are_what_the_csv_module_writes():
    """The rows are formatted by hand (speed): quoting and numbers exactly as csv.writer would."""
    data = metrics('id, with "quotes"\nand a line', 'model,"x"', correct=None, regions=False)
    data["rows"][0]["image_entropy"] = float("nan")
    run = parse_metrics(data, "dir,1")
    expected = io.StringIO()
    writer = csv.writer(expected, lineterminator="\n")
    for row_layer, segment, raw in zip(run.layers, run.segments, data["rows"], strict=True):
        values = [raw.get(k) for k in CSV_COLUMNS[4:-2]]  # the relative_* columns: not in these files
        values = ["" if v is None or v != v else v for v in values]
        writer.writerow([run.sample_id, run.model, row_layer, segment, *values, "", "dir,1"])
    assert csv_lines(run) == expected.getvalue()


def test_csv_reads_into_pandas_shape(study):
    """Numbers parse as numbers, blanks as missing: what pandas.read_csv makes of it."""
    root, _ = study
    rows = read_csv(root)
    shares = np.array([float(r["image_share"]) for r in rows])
    gts = [r["gt_share"] for r in rows]
    assert np.isfinite(shares).all() and sum(g == "" for g in gts) == len(LAYERS) * 13


def test_unreadable_metrics_are_skipped_named_and_counted(study, tmp_path, caplog):
    root, written = study
    assert written.study.skipped == [("broken/metrics.json", written.study.skipped[0][1])]
    page = (root / REPORT_NAME).read_text(encoding="utf-8")
    assert '"skipped":{"count":1' in page
    make_run(tmp_path, "ok", metrics("ok"))
    make_run(tmp_path, "future", metrics("future", format=2))
    make_run(tmp_path, "badrow", json.dumps({**metrics("badrow"), "rows": [{"layer": "x"}]}))
    with caplog.at_level(logging.WARNING, logger="attnviz.report"):
        written = write_report(tmp_path, Options(resamples=50))
    assert [p for p, _ in written.study.skipped] == ["badrow/metrics.json", "future/metrics.json"]
    assert "format 2" in caplog.text and str(tmp_path / "future" / "metrics.json") in caplog.text


def test_parse_ignores_unknown_keys_and_checks_values():
    run = parse_metrics({**metrics("x"), "new_key": {"nested": 1}}, "r")
    assert run.sample_id == "x" and run.correct is True and run.row(0)["image_share"] == pytest.approx(0.4)
    nan_row = metrics("x")
    nan_row["rows"][0]["image_entropy"] = float("nan")
    assert parse_metrics(nan_row, "r").row(0)["image_entropy"] is None
    for broken in ({**metrics("x"), "correct": "yes"}, {**metrics("x"), "rows": {}}, [1], {"rows": []},
                   {**metrics("x"), "rows": [{"layer": 0, "segment": "all", "image_share": "0.4"}]},
                   {**metrics("x"), "rows": [{"layer": True, "segment": "all"}]},
                   {**metrics("x"), "rows": [{"layer": 0, "segment": "all", "hit": False}]}):
        with pytest.raises(UnreadableMetrics):
            parse_metrics(broken, "r")


def test_a_repeated_run_is_in_the_table_but_counted_once(study):
    _, written = study
    assert written.study.duplicates == 1 and len(written.study.table) == 15 and written.study.samples == 14
    repeat = next(r for r in written.study.table if r["run"] == "a/0-layer3")
    assert repeat["layer"] == 3 and repeat["image_share"] == pytest.approx(0.45)


def test_table_rows_link_existing_files_at_the_rendered_layer(study):
    root, written = study
    row = next(r for r in written.study.table if r["run"] == "a/1")
    assert row["layer"] == 2 and row["viewer"] == "./a/1/viewer.html" and row["n_tokens"] == 22
    assert row["video"] == f"./a/1/{video_name(2)}" and (root / row["video"]).is_file()
    odd = next(r for r in written.study.table if r["run"] == ODD_DIR)
    assert odd["viewer"] == "./b/javascript%3Ano%20region%20%231%3F%2541/viewer.html"
    xss = next(r for r in written.study.table if r["run"] == "b/xss")
    assert xss["viewer"] is None and xss["video"] is None  # no files there: no links


def test_layer_option_picks_the_table_layer_and_position_layers(tmp_path):
    for i in range(3):
        make_run(tmp_path, f"r{i}", metrics(f"s{i}", layers=range(8)))
    written = write_report(tmp_path, Options(layer=5, layers=(1, 6, 40), resamples=50))
    assert {r["layer"] for r in written.study.table} == {5}
    assert written.series.position_layers == [1, 6]  # 40 is not there
    default = write_report(tmp_path, Options(resamples=50))
    assert default.series.position_layers == [0, 2, 5, 7]


def test_plots_are_written_and_a_plot_with_nothing_to_draw_leaves_no_old_file(study, tmp_path):
    root, written = study
    assert all((root / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in PLOT_NAMES.values())
    (tmp_path / PLOT_NAMES["ground_truth"]).write_bytes(b"old")
    make_run(tmp_path, "r", metrics("r", regions=False, positions=0))
    written = write_report(tmp_path, Options(resamples=50))
    assert written.series.gt_share == [] and written.series.position == []
    assert sorted(p.name for p in tmp_path.glob("report_*.png")) == [PLOT_NAMES["image_share"]]


def test_series_split_correctness_per_model(study):
    _, written = study
    lines = {(x.model, x.label): x for x in written.series.image_share}
    assert set(lines) == {(m, g) for m in ("ckpt/step_200", "ckpt/step_1000") for g in ("correct", "incorrect")}
    correct = lines["ckpt/step_200", "correct"]  # s0, s2, s4: 0.30, 0.34, 0.38 (+0.05 per layer)
    assert correct.samples == 3 and correct.x == list(LAYERS)
    assert correct.mean[1] == pytest.approx(0.39) and correct.low[1] <= 0.39 <= correct.high[1]
    assert [x.model for x in written.series.gt_share] == ["ckpt/step_200", "ckpt/step_1000"]  # natural order
    assert written.series.gt_share[1].samples == 7  # the sample without regions is left out


def test_only_unknown_correctness_gives_an_unknown_line(tmp_path):
    for i in range(3):
        make_run(tmp_path, f"r{i}", metrics(f"s{i}", correct=None))
    written = write_report(tmp_path, Options(resamples=50))
    assert [x.label for x in written.series.image_share] == ["unknown"]


def test_no_metrics_or_none_readable_is_an_error(tmp_path):
    with pytest.raises(NoMetrics, match="no metrics.json under"):
        write_report(tmp_path)
    make_run(tmp_path, "r", "[]")
    with pytest.raises(NoMetrics, match="none of the 1 metrics.json"):
        write_report(tmp_path)
    assert not (tmp_path / CSV_NAME).exists() and not list(tmp_path.glob(".*.tmp"))


def test_checkpoints_sort_and_label_by_what_differs():
    paths = ["/ckpt/run/step_1000", "/ckpt/run/step_200", "/ckpt/run/step_250"]
    assert sorted(paths, key=natural_key) == ["/ckpt/run/step_200", "/ckpt/run/step_250", "/ckpt/run/step_1000"]
    assert legend_names(paths) == {p: p.rsplit("/", 1)[1] for p in paths}
    assert legend_names(["demo"]) == {"demo": "demo"}
    assert sorted(["x²", "b2", "b10"], key=natural_key) == ["b2", "b10", "x²"]  # only ASCII digits count as numbers
