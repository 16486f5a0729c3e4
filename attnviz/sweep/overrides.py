"""A sweep's overrides, parsed once: which keys it varies, the values of one key, every job's overrides.

The sweep is ``hydra.sweeper.params`` followed by ``hydra.overrides.task`` — the arguments Hydra's basic sweeper
parses, in its order. Parsing uses Hydra's public ``OverridesParser`` and ``Override`` methods only; the job
expansion reproduces ``BasicSweeper.split_arguments`` (tests/test_sweep_overrides.py compares the two), so the
override strings match the ones Hydra writes into each job's ``.hydra/overrides.yaml``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, ValueType
from omegaconf import DictConfig, OmegaConf

# A name in the config (hydra.sweeper._target_), compared as text: nothing is imported from Hydra's internals.
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
MULTIRUN_RECORD = "multirun.yaml"  # the sweep's config, written by Hydra's sweeper before the first job


def bare_key(key: str) -> str:
    """``+model.path`` / ``~debug`` / ``++x`` -> the config key itself."""
    return key.lstrip("+~")


def listable(override: Override) -> bool:
    """Whether the values of an override can be listed here: a fixed value or a discrete sweep, but not an interval
    (for optimising sweepers) nor a ``glob(...)`` (its options come from Hydra's config loader, which only a
    running Hydra has)."""
    if not override.is_sweep_override():
        return True
    return override.is_discrete_sweep() and override.value_type != ValueType.GLOB_CHOICE_SWEEP


@dataclass(frozen=True)
class SweepOverrides:
    """The parsed overrides of one sweep, in the sweeper's order (params first, then the command line)."""

    parsed: tuple[Override, ...]

    def swept_keys(self) -> frozenset[str]:
        """Keys (without ``+``/``~``) the sweep varies: given as ``a,b``, ``range()``, ``choice()``, ``glob()``, ..."""
        return frozenset(bare_key(o.get_key_element()) for o in self.parsed if o.is_sweep_override())

    def values(self, key: str) -> list[Any] | None:
        """Values ``key`` takes (the last override of it wins, as in the sweeper); [] when the sweep does not set it,
        None when it is swept in a form that cannot be listed (an interval, a glob)."""
        last = [o for o in self.parsed if bare_key(o.get_key_element()) == key][-1:]
        if not last:
            return []
        if not listable(last[0]):
            return None
        return list(last[0].sweep_iterator()) if last[0].is_sweep_override() else [last[0].value()]

    def jobs(self) -> list[list[str]] | None:
        """Every job's overrides as the basic sweeper expands them: a cartesian product, the first key the outer
        loop; a key given twice keeps its first place and its last value. None when a sweep cannot be listed."""
        if not all(listable(override) for override in self.parsed):
            return None  # the basic sweeper itself refuses intervals
        choices: dict[str, list[str]] = {}
        for override in self.parsed:
            key = override.get_key_element()  # with its +/~ prefix: "+x" and "x" are different overrides
            if override.is_sweep_override():
                choices[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
            else:
                choices[key] = [f"{key}={override.get_value_element_as_str()}"]
        return [list(job) for job in itertools.product(*choices.values())]


def sweep_arguments(task: Iterable[str], params: Mapping[str, Any] | None = None) -> list[str]:
    """``hydra.sweeper.params`` as ``key=value`` strings, then the task overrides: what the sweeper parses."""
    return [f"{key}={value}" for key, value in (params or {}).items()] + list(task)


def parse_sweep(task: Iterable[str], params: Mapping[str, Any] | None = None) -> SweepOverrides:
    return SweepOverrides(tuple(OverridesParser.create().parse_overrides(sweep_arguments(task, params))))


def from_config(config: DictConfig) -> SweepOverrides:
    """The sweep of a multirun's config (the callback's, or a loaded multirun.yaml)."""
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    return parse_sweep(OmegaConf.select(config, "hydra.overrides.task") or [], params)


def uses_basic_sweeper(config: DictConfig) -> bool:
    return OmegaConf.select(config, "hydra.sweeper._target_") == BASIC_SWEEPER


def load_record(sweep_dir: str | Path) -> SweepOverrides | None:
    """The sweep recorded in ``<sweep_dir>/multirun.yaml``; None when there is none (yet)."""
    record = Path(sweep_dir) / MULTIRUN_RECORD
    try:
        stat = record.stat()
    except OSError:
        return None
    return _load_record(str(record), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _load_record(record: str, mtime_ns: int, size: int) -> SweepOverrides:
    """Parsed once per process and file version (``mtime_ns``, ``size`` key the cache): every job of a sweep asks,
    through the run-directory resolver."""
    return from_config(OmegaConf.load(record))
