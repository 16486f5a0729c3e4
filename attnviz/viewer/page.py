"""Write ``viewer.html``: one self-contained file (styles, script and data inline) that opens from disk offline.

Safety: token text reaches the page only as JSON inside a ``<script type="application/json">`` block with ``<``,
``>`` and ``&`` escaped, and the script puts it into the DOM with ``textContent`` only. A Content-Security-Policy
allows exactly the page's own script and style (by hash) and ``data:`` images, and no connection at all, so even
a token that looked like markup could neither run code nor reach the network.
"""

from __future__ import annotations

import base64
import hashlib
import html
from importlib import resources
from pathlib import Path
from typing import Any

from attnviz.files import VIEWER_NAME
from attnviz.trace import atomic_write
from attnviz.trace_store import json_text

__all__ = ["CORE_SCRIPT", "PAGE_STYLE", "PAGE_UI_SCRIPT", "VIEWER_NAME", "json_for_html", "render_page",
           "self_contained_page", "write_html", "write_page"]
ScriptName = str | tuple[str, str]  # a file of the page's package, "package:file" or (package, file)
# The pages' shared calculations (attnvizCore: decoding, normalisation, colours; no DOM): every page loads it first.
CORE_SCRIPT = ("attnviz.viewer", "viewer_core.js")
# The step pages' shared DOM helpers (attnvizPageUi: token spans, tooltips, play button, segment bar, canvases),
# loaded after the core, and their shared style rules, before the page's own.
PAGE_UI_SCRIPT = ("attnviz.viewer", "page_ui.js")
PAGE_STYLE = ("attnviz.viewer", "page.css")
SCRIPT_FILES = (CORE_SCRIPT, PAGE_UI_SCRIPT, "viewer_video.js", "viewer_ui.js")
STYLE_FILES = (PAGE_STYLE, "viewer.css")


def asset(package: str, name: str) -> str:
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")


def script_source(package: str, name: ScriptName) -> tuple[str, str]:
    """(package, file) of a page script named as a file of ``package``, ``"package:file"`` or (package, file)."""
    if isinstance(name, tuple):
        return name
    owner, _, file = name.rpartition(":")
    return (owner or package, file)


def joined(package: str, names: tuple[ScriptName, ...]) -> str:
    """The files ``names`` (see :func:`script_source`) one after another, a newline between two."""
    return "\n".join(asset(*script_source(package, name)) for name in names)


def json_for_html(payload: dict[str, Any]) -> str:
    """JSON that cannot close its ``<script>`` block or open markup, whatever the strings hold."""
    text = json_text(payload, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def self_contained_page(
    package: str, names: tuple[str, str | tuple[ScriptName, ...], tuple[ScriptName, ...]], payload: dict[str, Any],
    title: str,
) -> str:
    """A page from ``package``'s template, the styles and the scripts ``names`` lists (html file; one css file or a
    tuple of them; js files; a style or script may come from another package: see :func:`script_source`), each
    kind joined in that order, with ``payload`` inline, under a Content-Security-Policy that allows exactly that
    script and style (by hash) and ``data:`` images: the viewer's, the comparison's and the study report's safety
    rules in one place."""
    template, style_names, script_names = names
    style = joined(package, (style_names,) if isinstance(style_names, str) else style_names)
    script = joined(package, script_names)
    csp = (
        f"default-src 'none'; script-src '{_sha256(script)}'; style-src '{_sha256(style)}'; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    parts = {
        "{{CSP}}": html.escape(csp, quote=True),
        # a title may be a folder's name: braces escaped too, so it can never spell a later marker
        "{{TITLE}}": html.escape(title).replace("{", "&#123;"),
        "{{STYLE}}": style,
        "{{SCRIPT}}": script,
    }
    page = asset(package, template)
    for marker, value in parts.items():
        page = page.replace(marker, value)
    # the data goes in last, so no marker-looking text inside it is ever substituted
    head, tail = page.split("{{DATA}}")
    return head + json_for_html(payload) + tail


def render_page(payload: dict[str, Any]) -> str:
    """The page's full HTML text for ``payload`` (see :func:`attnviz.viewer.payload.build_payload`)."""
    names = ("viewer.html", STYLE_FILES, SCRIPT_FILES)
    return self_contained_page("attnviz.viewer", names, payload, payload.get("title") or "attnviz viewer")


def write_html(path: Path, text: str) -> Path:
    """Write a page's ``text`` to ``path`` as UTF-8 (temp name, then rename)."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    return path


def write_page(payload: dict[str, Any], run_dir: Path) -> Path:
    """Write ``run_dir/viewer.html``."""
    return write_html(Path(run_dir) / VIEWER_NAME, render_page(payload))
