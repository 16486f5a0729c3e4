"""The model-free path is model-free: re-rendering a run, rebuilding a sweep summary, loading a trace and every
module of the analysis, render and viewer layers import neither torch nor transformers (each in a fresh process)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import attnviz.render
import attnviz.viewer
from attnviz.metadata import COMPLETE, ModelInfo, RunMetadata
from attnviz.rerender import save_inputs
from attnviz.trace import save_trace
from tests.conftest import PROJECT_ROOT
from tests.viewer_fixture import make_images, make_trace

HEAVY = ("torch", "transformers")
PROBE = (
    "import atexit, sys\n"
    f"atexit.register(lambda: print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
)


def heavy_modules_after(code: str, *args: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE + code, *args], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("HEAVY"))
    return eval(line.removeprefix("HEAVY "))  # a printed list of module names


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A complete run directory (trace, input images, metadata) made without a model."""
    run_dir = tmp_path_factory.mktemp("run")
    trace = make_trace(layers=(1, 3))
    save_trace(trace, run_dir / "trace", "float16")
    save_inputs(make_images(trace), run_dir / "trace")
    model = ModelInfo(path="ckpt", family="Qwen2-VL", device="cpu", dtype="float32", num_layers=4)
    RunMetadata(status=COMPLETE, model=model, sample={"id": "s0"}, layer=3, files={"video": "x.mp4"}).save(run_dir)
    return run_dir


def test_render_only_imports_no_model_code(finished_run, tmp_path):
    code = "import runpy; sys.argv = ['run.py', *sys.argv[1:]]; runpy.run_path('run.py', run_name='__main__')\n"
    args = (f"render_only={finished_run}", f"output_dir={tmp_path}", "layer_idx=1", "video=draft",
            f"hydra.run.dir={tmp_path / 'hydra'}")
    assert heavy_modules_after(code, *args) == []
    assert RunMetadata.load(tmp_path).complete and (tmp_path / "viewer.html").is_file()
    assert (tmp_path / "combined_attention_visualization_layer1.mp4").stat().st_size > 0


def test_loading_a_trace_and_every_render_and_viewer_module_imports_no_model_code(finished_run):
    modules = ["attnviz.app", "attnviz.sweep.summary", "attnviz.sweep.__main__"]
    code = (
        "import importlib, attnviz\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "trace = attnviz.load_trace(sys.argv[1])\n"
        "assert trace.layers == [1, 3] and trace.row(3, 0).size == trace.prompt_len\n"
    )
    assert heavy_modules_after(code, str(finished_run)) == []


LIBRARY = ["attnviz.analysis", "attnviz.sinks", "attnviz.chat", "attnviz.schema", "attnviz.trace", "attnviz.metadata",
           "attnviz.files", "attnviz.regions", "attnviz.metrics", "attnviz.scoring", "attnviz.run_metrics",
           "attnviz.rerender", "attnviz.outputs", "attnviz.video", "attnviz.data", "attnviz.checks", "attnviz.report",
           "attnviz.comparison", "attnviz.compare.sample", "attnviz.compare.video", "attnviz.compare.page",
           "attnviz.compare.sweep", "attnviz.compare.plan", "attnviz.compare.layout"]


def test_the_model_free_layers_import_no_model_code_no_hydra_and_matplotlib_only_to_draw(finished_run):
    modules = LIBRARY + [
        info.name for package in (attnviz.render, attnviz.viewer)
        for info in pkgutil.iter_modules(package.__path__, prefix=f"{package.__name__}.")
    ]
    code = (
        "import importlib, attnviz\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "trace = attnviz.load_trace(sys.argv[1])\n"
        "print('LOADED', sorted(m for m in ('hydra', 'omegaconf', 'matplotlib') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", PROBE + code, str(finished_run)], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "LOADED []" in done.stdout and "HEAVY []" in done.stdout
