"""What people look at besides the video: ``viewer.html`` (interactive, offline), ``poster.png`` and
``attention_share.png``. The page and the plot come from the trace alone, the poster from the video's key frames,
so ``render_only`` rewrites all three."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from attnviz.files import POSTER_NAME, SHARE_NAME, VIEWER_NAME
from attnviz.schema import RenderConfig
from attnviz.trace import Trace
from attnviz.viewer.page import render_page, write_page
from attnviz.viewer.payload import build_payload, settings_from_render
from attnviz.viewer.poster import write_poster
from attnviz.viewer.share_plot import write_share_plot

__all__ = [
    "POSTER_NAME",
    "SHARE_NAME",
    "VIEWER_NAME",
    "build_payload",
    "render_page",
    "settings_from_render",
    "write_page",
    "write_pictures",
    "write_poster",
    "write_share_plot",
]


def write_pictures(
    trace: Trace,
    layer: int,
    images: list[Image.Image],
    render_cfg: RenderConfig,
    run_dir: Path,
    *,
    sample_id: str,
    text_start: int,
    key_frames: list[tuple[str, np.ndarray]],
) -> dict[str, str]:
    """Write the viewer page, the poster (of ``key_frames``: (caption, (H, W, 3) uint8) frames of the video) and
    the share plot into ``run_dir``; returns metadata "files" entries."""
    run_dir = Path(run_dir)
    title = f"attnviz · sample {sample_id} · layer {layer}"
    payload = build_payload(
        trace, images, settings_from_render(render_cfg, layer), sample_id=sample_id, text_start=text_start, title=title
    )
    viewer = write_page(payload, run_dir)
    poster = write_poster(key_frames, run_dir / POSTER_NAME, font_path=render_cfg.font_path)
    share = write_share_plot(trace, layer, run_dir / SHARE_NAME)
    return {"viewer": viewer.name, "poster": poster.name, "attention_share": share.name}
