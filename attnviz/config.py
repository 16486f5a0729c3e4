"""The schemas of :mod:`attnviz.schema` registered in Hydra's ConfigStore, and the composed config made typed.

The YAML files in ``conf/`` extend these schemas (``defaults: [<group>_schema]``), so a wrong type, an unknown key
or a name that is not one of a choice's members fails when Hydra composes the config, before anything loads.
:func:`typed` turns the composed config into the dataclasses once, at the entry; nothing below reads config by
string.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from attnviz.errors import AttnvizError
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
    extra = unknown_keys(cfg, AppConfig)
    if extra:
        raise AttnvizError(
            f"unknown key{'s' if len(extra) > 1 else ''} {', '.join(extra)}: '+key=value' adds a key attnviz never "
            "reads; see docs/configuration.md for the keys there are"
        )
    app = OmegaConf.to_object(cfg)
    assert isinstance(app, AppConfig), type(app)
    return app


def unknown_keys(node: DictConfig, schema: type, prefix: str = "") -> list[str]:
    """Dotted keys of ``node`` that ``schema`` (a dataclass; nested groups too) does not have."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    found = []
    for key in node:
        field = fields.get(str(key))
        if field is None:
            found.append(f"{prefix}{key}")
            continue
        nested = field.default_factory if field.default_factory is not dataclasses.MISSING else None
        child = node._get_node(key)
        if nested is not None and dataclasses.is_dataclass(nested) and isinstance(child, DictConfig):
            found += unknown_keys(child, nested, f"{prefix}{key}.")
    return found


def plain(settings: Any) -> Any:
    """A composed config, or settings dataclasses, as JSON-ready data (choices by name, interpolations resolved)."""
    if OmegaConf.is_config(settings):
        return OmegaConf.to_container(settings, resolve=True, enum_to_str=True)
    return to_data(settings)
