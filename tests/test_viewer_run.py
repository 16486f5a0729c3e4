"""A real run on the demo model writes the page, the poster and the share plot; render_only rewrites them."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
from PIL import Image

from attnviz.config import PROJECT_ROOT, CaptureConfig, RenderConfig, VideoConfig
from attnviz.outputs import read_metadata
from attnviz.rerender import rerender_run
from attnviz.trace import load_trace
from attnviz.viewer.payload import decode_rows

SMALL = VideoConfig(width=320, height=180)


def _payload(run_dir) -> dict:
    page = (run_dir / "viewer.html").read_text(encoding="utf-8")
    return json.loads(re.search(r'id="attnviz-data">(.*?)</script>', page, re.S).group(1))


def test_run_and_render_only_write_viewer_poster_and_share_plot(tmp_path, demo_model_dir):
    from attnviz import AttentionVisualizer

    viz = AttentionVisualizer(str(demo_model_dir), video=SMALL, capture=CaptureConfig(layers=[0]))
    data = PROJECT_ROOT / "demo" / "data"
    sample, images = viz.load_sample_data(str(data / "demo.json"), str(data), 0)
    run = tmp_path / "run"
    viz.create_attention_visualization_for_sample(sample, images, layer_idx=3, output_dir=run)
    meta = read_metadata(run)
    files = meta["files"]
    assert (files["viewer"], files["poster"], files["attention_share"]) == (
        "viewer.html", "poster.png", "attention_share.png")
    for name in ("poster.png", "attention_share.png"):
        assert np.asarray(Image.open(run / name).convert("L")).std() > 10
    payload = _payload(run)
    trace = load_trace(run / "trace")
    assert [entry["layer"] for entry in payload["layers"]] == [3, 0]
    assert payload["text_start"] == meta["text_start"]["position"]
    assert [s["name"] for s in payload["segments"]] == ["think", "answer"]
    for entry in payload["layers"]:  # the page carries the captured rows, to float16 precision
        rows = decode_rows(base64.b64decode(entry["rows"]), trace.prompt_len, trace.n_steps)
        for t, row in enumerate(rows):
            np.testing.assert_allclose(row, trace.row(entry["layer"], t), rtol=1e-3, atol=1e-7)

    again = tmp_path / "again"
    rerender_run(run, 0, RenderConfig(colormap="viridis"), SMALL, "Based on the following requirements", again)
    settings = _payload(again)["settings"]
    assert settings["layer"] == 0 and settings["colormap"] == "viridis"
    assert read_metadata(again)["files"]["poster"] == "poster.png" and (again / "poster.png").is_file()
