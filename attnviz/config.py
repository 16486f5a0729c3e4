"""The schemas of :mod:`attnviz.schema` registered in Hydra's ConfigStore, and the composed config made typed.

The YAML files in ``conf/`` extend these schemas (``defaults: [<group>_schema]``), so a wrong type, an unknown key
or a name that is not one of a choice's members fails when Hydra composes the config, before anything loads.
:func:`typed` turns the composed config into the dataclasses once, at the entry; nothing below reads config by
string.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from attnviz.schema import (  # noqa: F401  (re-exported: the config's dataclasses, importable from here)
    GROUP_SCHEMAS,
    REASON_RFT_PROMPT,
    AppConfig,
    CaptureConfig,
    DatasetConfig,
    GenerationConfig,
    ModelConfig,
    OverlayConfig,
    RenderConfig,
    VideoConfig,
    to_data,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def register_configs() -> None:
    """Store the schemas; YAML group members name them in their defaults list."""
    cs = ConfigStore.instance()
    cs.store(name="app_schema", node=AppConfig)
    for group, schema in GROUP_SCHEMAS.items():
        cs.store(group=group, name=f"{group}_schema", node=schema)
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))
    if not OmegaConf.has_resolver("attnviz_subdir"):  # run directories of a sweep (conf/config.yaml, hydra:)
        OmegaConf.register_new_resolver("attnviz_subdir", _sweep_subdir)


def _sweep_subdir(sweep_dir: str, job_overrides: Any, job_num: int) -> str:
    from attnviz.sweep.layout import sweep_subdir  # the sweep's code, loaded only when a sweep names a directory

    return sweep_subdir(sweep_dir, job_overrides, job_num)


def typed(cfg: DictConfig) -> AppConfig:
    """The composed config as :class:`AppConfig` (interpolations resolved, choices as Enum members).

    A mandatory value left unset (``???``) raises omegaconf's MissingMandatoryValue, which the entry point
    turns into one line naming the key.
    """
    app = OmegaConf.to_object(cfg)
    assert isinstance(app, AppConfig), type(app)
    return app


def plain(settings: Any) -> Any:
    """A composed config, or settings dataclasses, as JSON-ready data (choices by name, interpolations resolved)."""
    if OmegaConf.is_config(settings):
        return OmegaConf.to_container(settings, resolve=True, enum_to_str=True)
    return to_data(settings)
