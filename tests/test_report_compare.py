"""The report's comparison section: fabricated comparison jobs (each model's runs as the metrics writer leaves them,
every sample's compare.json as attnviz.compare writes it; no model) -> compare.csv numbers, the most-changed table,
its links, shards pooled, bad files skipped, and a folder without comparisons reported as before."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest

from attnviz.report import CSV_NAME, PLOT_NAMES, REPORT_NAME, Options, write_report
from attnviz.report.__main__ import main
from attnviz.report.compare_out import COMPARE_CSV, COMPARE_CSV_COLUMNS
from attnviz.report.stats import bootstrap_mean
from tests.test_report import XSS_ID, make_run, make_study, metrics

LABELS = ("base", "tuned", "same")
RESAMPLES = 400
NOT_METRICS = ("layer", "segment", "n_tokens", "image_shares")


def tuned_image(i: int) -> float:
    return 0.1 + 0.01 * (i % 3)  # tuned looks at the image 0.11 more on average, every sample more


def same_image(i: int) -> float:
    return 0.05 if i % 2 else -0.05  # as much more as less: no difference


def deltas(ref: dict, model: dict) -> dict:
    """compare.json's deltas: reference layer -> segment -> metric -> model − reference (layers matched by index)."""
    table = {(r["layer"], r["segment"]): r for r in ref["rows"]}
    out: dict = {}
    for row in model["rows"]:
        other = table[row["layer"], row["segment"]]
        out.setdefault(str(row["layer"]), {})[row["segment"]] = {
            k: None if row[k] is None or other[k] is None else row[k] - other[k] for k in row if k not in NOT_METRICS}
    return out


def sample_record(i: int, sample_id: str, data: dict, *, aligned: bool, files: dict) -> dict:
    comparisons = [{"model": label, "layer_match": "index", "layers": [[k, k] for k in range(4)],
                    "js_divergence": ({"3": 0.3 + 0.01 * i if label == "tuned" else 0.01} if aligned else {}),
                    "deltas": deltas(data["base"], data[label])} for label in LABELS[1:]]
    return {"format": 1, "kind": "compare_sample", "sample_id": sample_id, "answer": "pred" if aligned else "each",
            "token_aligned": aligned, "reference": "base",
            "models": [{"label": label, "run_dir": f"../../models/{label}/samples/{sample_id}", "num_layers": 4,
                        "correct": data[label]["correct"]} for label in LABELS],
            "comparisons": comparisons, "files": files}


def make_compare_job(job: Path, samples=range(12), *, aligned: bool = True, videos: int = 3,
                     ids=lambda i: f"s{i}") -> Path:
    """A comparison of three models on ``samples``: base (the reference), tuned (+0.1…0.12 image share at every
    layer and segment), same (±0.05, no difference); the first ``videos`` samples have a compare video."""
    job.mkdir(parents=True, exist_ok=True)
    record = {"format": 1, "kind": "compare", "answer": "pred" if aligned else "each", "reference": "base",
              "models": [{"label": label, "path": f"/ckpt/{label}", "num_layers": 4, "layer": 3} for label in LABELS]}
    (job / "compare.json").write_text(json.dumps(record), encoding="utf-8")
    for i in samples:
        base = 0.3 + 0.02 * i
        data = {"base": metrics(ids(i), "base", image=base),
                "tuned": metrics(ids(i), "tuned", correct=i % 4 > 0, image=base + tuned_image(i)),
                "same": metrics(ids(i), "same", image=base + same_image(i))}
        for label in LABELS:
            make_run(job / "models" / label / "samples", ids(i).replace("/", "_"), data[label], layer=3)
        folder = job / "samples" / ids(i).replace("/", "_")
        folder.mkdir(parents=True)
        (folder / "compare.html").write_text("stand-in", encoding="utf-8")
        files: dict = {"viewer": "compare.html", "videos": {}}
        if i < videos:
            (folder / "compare_layer3.mp4").write_text("stand-in", encoding="utf-8")
            files["videos"]["3"] = "compare_layer3.mp4"
        record = sample_record(i, ids(i).replace("/", "_"), data, aligned=aligned, files=files)
        record["sample_id"] = ids(i)
        (folder / "compare.json").write_text(json.dumps(record), encoding="utf-8")
    return job


def compare_csv(root: Path) -> dict[tuple, dict[str, str]]:
    with open(root / COMPARE_CSV, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == COMPARE_CSV_COLUMNS
        return {(r["model"], int(r["layer"]), r["segment"], r["metric"]): r for r in reader}


def page_data(root: Path) -> dict:
    page = (root / REPORT_NAME).read_text(encoding="utf-8")
    start = page.index('<script type="application/json" id="report-data">') + len(
        '<script type="application/json" id="report-data">')
    return json.loads(page[start : page.index("</script>", start)])


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Path:
    root = make_compare_job(tmp_path_factory.mktemp("compare") / "job")
    write_report(root, Options(resamples=RESAMPLES))
    return root


def test_a_known_difference_has_its_mean_and_an_interval_without_zero(job):
    rows = compare_csv(job)
    row = rows["tuned", 2, "all", "image_share"]
    assert row["reference"] == "base" and row["model_layer"] == "2" and row["n"] == "12"
    assert float(row["diff"]) == pytest.approx(0.11)
    assert 0 < float(row["diff_lo"]) <= 0.11 <= float(row["diff_hi"])
    base = np.mean([min(0.3 + 0.02 * i + 0.1, 0.9) for i in range(12)])  # layer 2: +0.05 per layer
    assert float(row["mean_reference"]) == pytest.approx(base)
    assert float(row["mean_model"]) - float(row["mean_reference"]) == pytest.approx(float(row["diff"]))
    sink = rows["tuned", 2, "all", "sink_share"]  # the writer's sink share falls as the image share rises
    assert float(sink["diff"]) == pytest.approx(-0.11) and float(sink["diff_hi"]) < 0


def test_no_difference_has_an_interval_around_zero(job):
    rows = compare_csv(job)
    row = rows["same", 3, "answer", "image_share"]
    assert float(row["diff"]) == pytest.approx(0.0, abs=1e-12)
    assert float(row["diff_lo"]) < 0 < float(row["diff_hi"])
    flat = rows["same", 3, "all", "text_share"]  # every sample's delta 0: a zero-width interval at 0
    assert float(flat["diff_lo"]) == float(flat["diff_hi"]) == 0.0


def test_intervals_are_the_reports_paired_bootstrap(job):
    """The same code as every other interval of the report: samples resampled, with the report's seed."""
    row = compare_csv(job)["tuned", 1, "think", "image_share"]
    files = sorted((job / "samples").glob("*/compare.json"))  # the samples in the order the report reads them
    paired = [json.loads(f.read_text(encoding="utf-8"))["comparisons"][0]["deltas"]["1"]["think"]["image_share"]
              for f in files]
    assert sorted(paired) == pytest.approx(sorted(tuned_image(i) for i in range(12)))
    mean, low, high = bootstrap_mean(paired, resamples=RESAMPLES)
    assert (float(row["diff"]), float(row["diff_lo"]), float(row["diff_hi"])) == pytest.approx((mean, low, high),
                                                                                                rel=1e-12)


def test_js_divergence_rows_and_empty_cells(job):
    rows = compare_csv(job)
    js = rows["tuned", 3, "all", "js_divergence"]
    assert js["n"] == "12" and float(js["diff"]) == pytest.approx(0.3 + 0.01 * 5.5)
    assert js["mean_reference"] == js["mean_model"] == ""
    assert ("tuned", 2, "all", "js_divergence") not in rows  # only the layers that have one
    assert ("tuned", 0, "coords", "image_share") not in rows  # segments the runs do not have
    gt = rows["tuned", 0, "all", "gt_share"]
    assert float(gt["diff"]) == 0.0 and gt["diff_lo"] == gt["diff_hi"] == "0.0"
    assert all(r["metric"] != "relative_hit" for r in rows.values())  # never measured: no row


def test_the_most_changed_come_first_with_links_that_resolve(job):
    section = page_data(job)["comparison"]["sections"][0]
    assert section["models"] == list(LABELS) and section["samples"] == 12 and section["table"]["by"] == "js"
    rows = section["table"]["rows"]
    assert [(r["model"], r["id"]) for r in rows[:3]] == [("tuned", "s11"), ("tuned", "s10"), ("tuned", "s9")]
    assert all(r["model"] == "same" for r in rows[12:]) and len(rows) == 24
    assert rows[0]["js"] == pytest.approx(0.41) and rows[0]["layer"] == 3 and rows[0]["segment"] == "answer"
    assert rows[0]["image_share"] == pytest.approx(tuned_image(11))
    for row in rows:
        assert row["viewer"] == f"./samples/{row['id']}/compare.html" and (job / row["viewer"]).is_file()
        assert row["video"] is None or (job / row["video"]).is_file()
    assert sum(r["video"] is not None for r in rows) == 2 * 3


def test_without_token_alignment_the_image_share_change_sorts(tmp_path):
    root = make_compare_job(tmp_path / "job", aligned=False)
    written = write_report(root, Options(resamples=100))
    assert written.comparisons[0].job.key.answer == "each"
    table = page_data(root)["comparison"]["sections"][0]["table"]
    assert table["by"] == "delta" and "js_divergence" not in (root / COMPARE_CSV).read_text(encoding="utf-8")
    changes = [abs(r["image_share"]) for r in table["rows"]]
    assert changes == sorted(changes, reverse=True) and table["rows"][0]["model"] == "tuned"


def test_shards_pool_and_other_comparisons_stay_apart(tmp_path):
    make_compare_job(tmp_path / "multirun" / "0", samples=range(0, 6))
    make_compare_job(tmp_path / "multirun" / "1", samples=range(6, 12))
    make_compare_job(tmp_path / "multirun" / "2", samples=range(0, 2))  # the same samples again: counted once
    written = write_report(tmp_path, Options(resamples=100))
    (comp,) = written.comparisons
    assert comp.samples == 12 and comp.duplicates == 2 and comp.folders == {f"multirun/{i}" for i in range(3)}
    assert compare_csv(tmp_path)["tuned", 2, "all", "image_share"]["n"] == "12"
    assert len(list(tmp_path.glob("report_compare_*.png"))) == 2


def test_a_broken_or_stale_compare_json_is_skipped_and_named(tmp_path, capsys, caplog):
    root = make_compare_job(tmp_path / "job", samples=range(4))
    (root / "samples" / "s0" / "compare.json").write_text("{", encoding="utf-8")
    stale = json.loads((root / "samples" / "s1" / "compare.json").read_text(encoding="utf-8"))
    stale["models"] = stale["models"][:2]  # another comparison's file left in the folder
    (root / "samples" / "s1" / "compare.json").write_text(json.dumps(stale), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="attnviz.report"):
        assert main([str(root), "--resamples", "50"]) == 1
    assert "2 compare.json skipped" in capsys.readouterr().err
    assert f"skipped {root / 'samples' / 's1' / 'compare.json'}: compares ['base', 'tuned']" in caplog.text
    data = page_data(root)["comparison"]
    assert data["skipped"]["count"] == 2 and data["sections"][0]["samples"] == 2


def test_a_folder_without_comparisons_is_reported_as_before(tmp_path):
    root = make_study(tmp_path / "study")
    (root / COMPARE_CSV).write_text("old", encoding="utf-8")
    (root / "report_compare_levels.png").write_bytes(b"old")
    written = write_report(root, Options(resamples=100))
    assert written.comparisons == [] and not (root / COMPARE_CSV).exists()
    assert sorted(p.name for p in root.glob("report_*.png")) == sorted(PLOT_NAMES.values())
    data = page_data(root)
    assert set(data) == {"title", "summary", "skipped", "plots", "csv", "table_note", "rows", "series"}
    assert [f.name for f in written.files] == [CSV_NAME, *PLOT_NAMES.values(), REPORT_NAME]


def test_the_comparison_section_in_a_browser(browser, tmp_path):
    root = make_compare_job(tmp_path / "job", ids=lambda i: XSS_ID if i == 11 else f"s{i}")
    write_report(root, Options(resamples=100))
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text))
    page.goto((root / REPORT_NAME).as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=15_000)
    assert errors == [] and page.evaluate("() => window.__pwned") is None
    assert page.is_visible("#comparison") and page.evaluate(
        "() => Array.from(document.querySelectorAll('#comparison img'), (i) => i.naturalWidth > 300)") == [True] * 2
    ids = page.evaluate("() => Array.from(document.querySelectorAll('table.changed tbody tr td:first-child'), "
                        "(td) => td.textContent)")
    assert ids[0] == XSS_ID and len(ids) == 24  # the most changed first, the hostile id as text
    page.click("table.changed th[data-key='js'] button")  # ascending: the least changed first
    models = page.evaluate("() => Array.from(document.querySelectorAll('table.changed tbody tr td:nth-child(2)'), "
                           "(td) => td.textContent)")
    assert models == ["same"] * 12 + ["tuned"] * 12
    assert page.get_attribute("table.changed th[data-key='js']", "aria-sort") == "ascending"
    for href in page.evaluate("() => Array.from(document.querySelectorAll('#comparison a[href]'), (a) => a.href)"):
        url = urlparse(href)
        assert url.scheme == "file" and Path(unquote(url.path)).is_file(), href
        assert Path(unquote(url.path)).is_relative_to(root)
    page.close()


def test_no_comparison_section_in_a_browser_without_comparisons(browser, tmp_path):
    make_run(tmp_path, "r", metrics("r"))
    write_report(tmp_path, Options(resamples=50))
    page = browser.new_page()
    page.goto((tmp_path / REPORT_NAME).as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=15_000)
    assert not page.is_visible("#comparison") and page.evaluate("() => window.attnvizReport.compared") == []
    page.close()
