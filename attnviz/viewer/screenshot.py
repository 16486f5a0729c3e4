"""Screenshot a viewer page in headless Chromium (driven by Playwright, from the ``test`` extra).

    python -m attnviz.viewer.screenshot RUN_DIR/viewer.html out.png --step 16 --hover-peak

Used for the README's picture and by the browser tests (same launch options). Chromium is the system's
(Debian: ``apt-get install chromium``); Playwright's own browser download is never needed.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from attnviz.errors import AttnvizError

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome")
# A fresh profile, no background traffic: the page is checked for zero network requests.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
READY = "body[data-ready='1']"  # set by the page once its images are decoded and the first step drawn


def find_chromium() -> str | None:
    """``$ATTNVIZ_CHROMIUM`` or the first Chromium on PATH; None if there is none."""
    explicit = os.environ.get("ATTNVIZ_CHROMIUM")
    if explicit:
        return explicit
    return next((path for name in BROWSER_NAMES if (path := shutil.which(name))), None)


def launch(playwright):
    """A headless Chromium browser from the system's Chromium."""
    path = find_chromium()
    if path is None:
        raise AttnvizError("no Chromium found: install it (Debian: apt-get install chromium) or set ATTNVIZ_CHROMIUM")
    return playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)


def screenshot(page_path: Path, out: Path, *, step: int | None = None, hover_peak: bool = False,
               width: int = 1400, height: int = 820) -> Path:
    """Open ``page_path``, go to ``step`` (default: the first), optionally hover the strongest image cell."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise AttnvizError('screenshots need Playwright: pip install -e ".[test]"') from None
    with sync_playwright() as pw:
        browser = launch(pw)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(Path(page_path).resolve().as_uri())
        page.wait_for_selector(READY, timeout=30_000)
        if step is not None:
            page.evaluate("t => window.attnviz.setStep(t)", step)
        if hover_peak:
            _hover_peak_cell(page)
        page.screenshot(path=str(out))
        browser.close()
    return out


def _hover_peak_cell(page) -> None:
    """Move the mouse over the current step's strongest image cell on show (its tooltip shows in the picture)."""
    where = page.evaluate("""() => {
        const row = window.attnviz.rows()[window.attnviz.state.step];
        let best = null;  // over the cells on show (a video's figure shows one pair)
        for (const { geo: g, canvas } of window.attnviz.views) g.cellPos.forEach((p, k) => {
            const v = p >= 0 ? row[p] : -1;  // cellPos: each cell's sequence position (-1: no token)
            if (!best || v > best.v) best = { v, g, k, canvas };
        });
        if (!best) return null;
        best.canvas.scrollIntoView({ block: "nearest" });  // a cell below the fold gets no mouse event
        const box = best.canvas.getBoundingClientRect();
        const r = Math.floor(best.k / best.g.grid_w), c = best.k % best.g.grid_w;
        const x = box.left + ((c + 0.5) * box.width) / best.g.grid_w;
        return { x, y: box.top + ((r + 0.5) * box.height) / best.g.grid_h };
    }""")
    if where:
        page.mouse.move(where["x"], where["y"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--step", type=int, default=None, help="0-based step to show")
    parser.add_argument("--hover-peak", action="store_true", help="hover the strongest image cell")
    args = parser.parse_args(argv)
    print(screenshot(args.page, args.out, step=args.step, hover_peak=args.hover_peak))


if __name__ == "__main__":
    main()
