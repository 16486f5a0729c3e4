"""Shared fixtures: tiny models built once per session, Hydra composition into temporary run directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from attnviz.config import PROJECT_ROOT, register_configs  # noqa: E402
from attnviz.viewer.screenshot import find_chromium, launch  # noqa: E402
from tests.twins import twin_dir  # noqa: E402, F401  (session fixture: tiny twins of every family)

CONF_DIR = PROJECT_ROOT / "conf"
DEMO_MODEL = PROJECT_ROOT / "demo" / "model"
DEMO_DATA = PROJECT_ROOT / "demo" / "data"

register_configs()
torch.set_num_threads(2)


@pytest.fixture(scope="session")
def demo_model_dir() -> Path:
    assert (DEMO_MODEL / "config.json").is_file(), "the demo model is missing: run scripts/train_demo.py"
    return DEMO_MODEL


@pytest.fixture(scope="session")
def tiny_qwen2vl_dir(tmp_path_factory) -> Path:
    """A random Qwen2-VL of the demo's shape, saved with its offline processor like a real checkpoint."""
    from transformers import Qwen2VLForConditionalGeneration

    from attnviz.demo import build

    folder = tmp_path_factory.mktemp("tiny_qwen2vl")
    processor = build.build_processor()
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(build.build_config(processor.tokenizer))
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture()
def compose_cfg(tmp_path):
    """compose(overrides) -> DictConfig with the run directory in tmp_path."""
    from hydra import compose, initialize_config_dir

    def _compose(*overrides: str):
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
            return compose("config", overrides=[f"output_dir={tmp_path}", *overrides])

    return _compose


# --- the headless Chromium of the page tests (the system's, through Playwright; never a downloaded browser):
# skipped with the reason where none is installed, a failure under CI=true (CI must prove the pages)


def browser_unavailable() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return 'Playwright is not installed (pip install -e ".[test]")'
    if find_chromium() is None:
        return "no Chromium on PATH (Debian: apt-get install chromium; or set ATTNVIZ_CHROMIUM)"
    return None


@pytest.fixture(scope="module")
def browser():
    reason = browser_unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser tests must run in CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = launch(pw)
        yield chromium
        chromium.close()
