"""Every config composes; the public keys exist; wrong types fail at compose time."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from tests.conftest import CONF_DIR

PUBLIC_KEYS = [
    "model.path",
    "dataset.json",
    "dataset.image_dir",
    "sample_idx",
    "layer_idx",
    "start_phrase",
    "max_image_num",
    "generation.max_new_tokens",
    "generation.do_sample",
    "generation.temperature",
    "generation.top_p",
    "generation.top_k",
    "device",
    "dtype",
]


def _members(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def test_default_config_has_every_public_key(compose_cfg):
    cfg = compose_cfg()
    for key in PUBLIC_KEYS:
        assert OmegaConf.select(cfg, key, throw_on_missing=True) is not None, key
    assert cfg.layer_idx == cfg.model.default_layer
    assert cfg.model.path.endswith("demo/model")


@pytest.mark.parametrize("group", ["model", "dataset", "generation", "capture", "render", "video"])
def test_every_group_member_composes(compose_cfg, group):
    members = _members(group)
    assert members
    fill = {"model": ["model.path=x"], "dataset": ["dataset.json=x", "dataset.image_dir=x"]}.get(group, [])
    for member in members:
        cfg = compose_cfg(f"{group}={member}", *fill)
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def test_user_checkpoint_presets_need_a_path(compose_cfg):
    cfg = compose_cfg("model=qwen2_vl_7b_instruct")
    assert OmegaConf.is_missing(cfg.model, "path")
    assert cfg.model.max_pixels == 480000 and cfg.layer_idx == 20


@pytest.mark.parametrize(
    "override", ["sample_idx=abc", "generation.do_sample=maybe", "video.fps=fast", "no_such_key=1", "model.nope=1"]
)
def test_wrong_type_or_unknown_key_fails_at_compose_time(compose_cfg, override):
    with pytest.raises(ConfigCompositionException):
        compose_cfg(override)


def test_command_line_overrides_reach_the_config(compose_cfg):
    cfg = compose_cfg("layer_idx=-1", "sample_idx=3", "start_phrase=Find", "generation.max_new_tokens=7")
    assert (cfg.layer_idx, cfg.sample_idx, cfg.start_phrase, cfg.generation.max_new_tokens) == (-1, 3, "Find", 7)
