"""Launcher schemas for the presets in conf/hydra/launcher/.

The presets keep the plugins' names (``hydra/launcher=joblib``), so they cannot extend the plugins' configs
by those names; the plugins' own nodes are stored again as ``<name>_schema`` for the YAML files to extend.
(Hydra imports plugin modules itself: reusing its stored node, not the dataclass, keeps one config type.)
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.config_source import ConfigLoadError

PLUGIN_CONFIGS = ("joblib", "submitit_local", "submitit_slurm")


def register_launcher_schemas() -> None:
    Plugins.instance()  # imports the launcher plugins, which store their configs
    cs = ConfigStore.instance()
    for name in PLUGIN_CONFIGS:
        try:
            node = cs.load(f"hydra/launcher/{name}.yaml").node
        except ConfigLoadError:  # a plugin that is not installed: its preset fails when selected, not before
            continue
        cs.store(group="hydra/launcher", name=f"{name}_schema", node=node, provider="attnviz")
