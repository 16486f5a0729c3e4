"""Defaults are stated once (the schema), presets list exactly what they change, choices fail at compose time, and
the Python API takes its defaults from the same schema."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
import yaml
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from attnviz.schema import GROUP_SCHEMAS, AppConfig, ModelConfig
from tests.conftest import CONF_DIR, PROJECT_ROOT

# compose a member with the others' mandatory keys filled, and without a dataset's own render settings
FILL = ["model.path=x", "dataset=reason_rft", "dataset.json=x", "dataset.image_dir=x"]


def flat(node, prefix: str = "") -> dict[str, object]:
    """{"a.b": value} for every leaf of a nested dict (lists are leaves)."""
    out: dict[str, object] = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        out.update(flat(value, f"{name}.") if isinstance(value, dict) else {name: value})
    return out


def listed_keys(path) -> set[str]:
    data = yaml.safe_load(path.read_text()) or {}
    data.pop("defaults", None)
    return set(flat(data))


def members() -> list[tuple[str, str]]:
    return [(group, p.stem) for group in GROUP_SCHEMAS for p in sorted((CONF_DIR / group).glob("*.yaml"))]


def changed_keys(composed, schema) -> set[str]:
    base = flat(OmegaConf.to_container(OmegaConf.structured(schema), enum_to_str=True))
    got = flat(OmegaConf.to_container(composed, enum_to_str=True))
    return {key for key in got if got[key] != base.get(key, object())}


def is_global(path) -> bool:
    return path.read_text().startswith("# @package _global_")


@pytest.mark.parametrize(("group", "member"), members())
def test_a_preset_changes_exactly_the_keys_its_yaml_lists(compose_cfg, group, member):
    path = CONF_DIR / group / f"{member}.yaml"
    fill = [f for f in FILL if not f.startswith(f"{group}")]
    cfg = compose_cfg(f"{group}={member}", *fill)
    if is_global(path):  # a preset of the whole run (compare=demo): what it changes against the plain run
        plain = flat(OmegaConf.to_container(compose_cfg(*fill), enum_to_str=True))
        got = flat(OmegaConf.to_container(cfg, enum_to_str=True))
        assert {key for key in got if got[key] != plain.get(key)} == listed_keys(path)
        return
    assert changed_keys(cfg[group], GROUP_SCHEMAS[group]) == listed_keys(path)


def test_a_datasets_render_settings_change_only_what_they_list(compose_cfg):
    cfg = compose_cfg("dataset=demo")
    assert changed_keys(cfg.render, GROUP_SCHEMAS["render"]) == listed_keys(CONF_DIR / "dataset_render" / "demo.yaml")


def test_the_primary_config_restates_no_default(compose_cfg):
    assert set(yaml.safe_load((CONF_DIR / "config.yaml").read_text())) == {"defaults", "hydra"}
    cfg = compose_cfg()
    top = {k: v for k, v in OmegaConf.to_container(cfg, enum_to_str=True).items() if k not in GROUP_SCHEMAS}
    defaults = {k: v for k, v in OmegaConf.to_container(OmegaConf.structured(AppConfig), enum_to_str=True).items()
                if k not in GROUP_SCHEMAS}
    assert {k: v for k, v in top.items() if k != "output_dir"} == {k: v for k, v in defaults.items()
                                                                   if k != "output_dir"}


def test_the_python_api_takes_the_configs_defaults():
    from attnviz.models.loading import load_model
    from attnviz.visualizer import AttentionVisualizer

    app = AppConfig()
    init = inspect.signature(AttentionVisualizer.__init__).parameters
    for name in ("max_image_num", "mode", "device", "dtype"):
        assert init[name].default == getattr(app, name), name
    loader = inspect.signature(load_model).parameters
    assert (loader["device"].default, loader["dtype"].default) == (app.device, app.dtype)
    assert ModelConfig().attn_implementation == "auto"


CHOICES = {
    "render.norm": "[step, global, log]",
    "render.image_mode": "[cells, heatmap]",
    "render.overlay.space": "[norm1000, pixels, model_pixels, cells]",
    "mode": "[generate, replay]",
    "capture.heads": "[mean, all]",
    "capture.dtype": "[float16, float32]",
    "model.attn_implementation": "[auto, sdpa, eager, flash_attention_2]",
}


@pytest.mark.parametrize("key", sorted(CHOICES))
def test_a_choice_outside_its_members_fails_at_compose_time_naming_them(compose_cfg, key):
    with pytest.raises(ConfigCompositionException) as failed:
        compose_cfg(f"{key}=bogus")
    assert f"Invalid value 'bogus', expected one of {CHOICES[key]}" in str(failed.value.__cause__)


def test_an_unknown_sink_group_fails_at_compose_time(compose_cfg):
    with pytest.raises(ConfigCompositionException) as failed:
        compose_cfg("render.exclude=[bos,nope]")
    assert "expected one of [bos, system, vision_markers, chat_template, special]" in str(failed.value.__cause__)


PROBE = (
    "import atexit, runpy, sys\n"
    "atexit.register(lambda: print('HEAVY', sorted(m for m in ('torch', 'transformers') if m in sys.modules)))\n"
    "sys.argv = ['run.py', *sys.argv[1:]]\n"
    "runpy.run_path('run.py', run_name='__main__')\n"
)


def test_the_cli_refuses_a_bad_choice_before_importing_torch(tmp_path):
    done = subprocess.run([sys.executable, "-c", PROBE, "render.norm=bogus", f"hydra.run.dir={tmp_path}"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "Invalid value 'bogus', expected one of [step, global, log]" in done.stderr
    assert "HEAVY []" in done.stdout


def test_from_config_takes_the_typed_settings_as_composed(compose_cfg, tmp_path):
    from attnviz.config import typed
    from attnviz.visualizer import AttentionVisualizer

    app = typed(compose_cfg("render=heatmap", "video=draft", "mode=replay"))
    viz = AttentionVisualizer.from_config(app, tmp_path)
    assert viz.app is app and viz.render.colormap == "magma" and viz.video.width == 1280 and viz.mode == "replay"
    assert viz.loaded.adapter.family == "Qwen2-VL" and viz.output_dir == tmp_path
