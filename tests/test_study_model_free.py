"""The study's model-free layers stay model-free: planning, state, index, merge, the render pool and its workers
import neither torch nor transformers (each checked in a fresh process), and a study whose samples only need
rendering (videos asked for later) never loads them."""

from __future__ import annotations

import pytest

from tests.test_model_free import heavy_modules_after

MODEL_FREE = ["attnviz.study", "attnviz.study.selection", "attnviz.study.state", "attnviz.study.index",
              "attnviz.study.page", "attnviz.study.merge", "attnviz.study.__main__", "attnviz.study.pool",
              "attnviz.study.render", "attnviz.study.runner", "attnviz.video"]


@pytest.mark.parametrize("module", MODEL_FREE)
def test_study_modules_import_no_model_code(module):
    assert heavy_modules_after(f"import importlib; importlib.import_module({module!r})") == []


def test_rendering_later_loads_no_model(tmp_path):
    """A finished study asked for its videos afterwards: rendered from the traces, torch never imported."""
    from tests.test_study import _run

    job = tmp_path / "study"
    _run(job, "samples=[5]", "videos=none")
    code = (
        "import runpy; sys.argv = ['run.py', *sys.argv[1:]]; runpy.run_path('run.py', run_name='__main__')\n"
    )
    args = ("samples=[5]", "videos=all", f"output_dir={job}", "video.width=320", "video.height=180",
            "generation.max_new_tokens=8", "render_workers=1", f"hydra.run.dir={tmp_path / 'hydra'}")
    assert heavy_modules_after(code, *args) == []
    assert len(list(job.glob("samples/*/*.mp4"))) == 1
