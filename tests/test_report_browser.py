"""report.html in a real headless Chromium (the system's, driven by Playwright): offline, no errors, plots,
sorting, hostile sample ids shown as text, links to files that exist.

Skipped with a reason when Playwright or Chromium is missing; under CI=true that is a failure instead.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from attnviz.report import PLOT_NAMES, REPORT_NAME, Options, write_report
from tests.test_report import XSS_ID, make_study

READY = "body[data-ready='1']"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = make_study(tmp_path_factory.mktemp("study"))
    write_report(root, Options(resamples=200))
    return root / REPORT_NAME


@pytest.fixture()
def page(browser, report):
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    seen = {"requests": [], "console": [], "errors": [], "dialogs": []}
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("console", lambda m: seen["console"].append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    page.goto(report.as_uri())
    page.wait_for_selector(READY, timeout=15_000)
    page.seen = seen
    yield page
    page.close()


def _column(page, key: str) -> list[str]:
    index = page.evaluate(f"""() => Array.from(document.querySelectorAll('#head th'))
        .findIndex((th) => th.dataset.key === '{key}')""")
    return page.evaluate(f"""() => Array.from(document.querySelectorAll('#rows tr'),
        (tr) => tr.children[{index}].textContent)""")


def test_page_opens_offline_with_no_errors(page, report):
    assert page.seen["requests"] == [report.as_uri()]  # the file itself, nothing else (images are inline)
    assert page.seen["console"] == [] and page.seen["errors"] == [] and page.seen["dialogs"] == []
    csp = page.get_attribute("meta[http-equiv='Content-Security-Policy']", "content")
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp and "img-src data:" in csp


def test_plots_are_present_and_decoded(page):
    images = page.evaluate("""() => Array.from(document.querySelectorAll('#plots img'),
        (img) => [img.src.slice(0, 22), img.naturalWidth, img.complete])""")
    assert len(images) == len(PLOT_NAMES)
    assert all(src == "data:image/png;base64," and width > 300 and done for src, width, done in images)


def test_hostile_sample_id_is_text_and_runs_nothing(page):
    assert XSS_ID in _column(page, "id")
    assert page.evaluate("() => window.__pwned") is None and page.seen["dialogs"] == []
    assert page.evaluate("() => document.querySelectorAll('#rows script, #rows img').length") == 0


def test_clicking_a_header_sorts_the_rows(page):
    page.click("th[data-key='image_share'] button")
    shares = [float(v) for v in _column(page, "image_share")]
    assert shares == sorted(shares) and len(shares) == 15
    assert page.get_attribute("th[data-key='image_share']", "aria-sort") == "ascending"
    page.click("th[data-key='image_share'] button")
    assert [float(v) for v in _column(page, "image_share")] == sorted(shares, reverse=True)
    page.click("th[data-key='gt_share'] button")
    gt = _column(page, "gt_share")
    assert gt[-1] == "" and gt[:-1] == sorted(gt[:-1])  # the sample without a region last
    page.click("th[data-key='id'] button")
    assert _column(page, "id")[:3] == [XSS_ID, "noregion", "s0"]


def test_links_point_at_existing_files(page, report):
    hrefs = page.evaluate("() => Array.from(document.querySelectorAll('a[href]'), (a) => a.href)")
    table = page.evaluate("() => Array.from(document.querySelectorAll('#rows a'), (a) => a.textContent)")
    assert table.count("viewer") == table.count("video") == 14  # every run but the one without files
    assert len(hrefs) == 28 + len(PLOT_NAMES) + 1  # and the plots' PNGs and the CSV
    for href in hrefs:
        url = urlparse(href)
        assert url.scheme == "file" and Path(unquote(url.path)).is_file(), href
        assert Path(unquote(url.path)).is_relative_to(report.parent)
