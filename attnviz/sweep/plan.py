"""Which layers a sweep renders, read from its overrides, so one generation captures them all."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser

log = logging.getLogger(__name__)
LAYER_KEY = "layer_idx"


def swept_layers(overrides: Iterable[str], sweeper_params: Mapping[str, Any] | None = None) -> list[int]:
    """``layer_idx`` values of a multirun (``layer_idx=0,1,2``, ``range(0,4)``, hydra.sweeper.params) -> sorted.

    Empty when the sweep does not list layers, or lists them in a form that cannot be enumerated (an
    interval for an optimising sweeper): jobs then capture their own layer and share when they can.
    """
    params = [f"{key}={value}" for key, value in (sweeper_params or {}).items()]
    parsed = OverridesParser.create().parse_overrides([*params, *overrides])
    values: set[int] = set()
    for override in parsed:
        if override.get_key_element().lstrip("+~") != LAYER_KEY:
            continue
        if not override.is_sweep_override():
            values.add(int(override.value()))
        elif override.is_discrete_sweep():
            values.update(int(v) for v in override.sweep_iterator())
        else:
            log.info("%s is swept as %s: layers are captured job by job", LAYER_KEY, override.value_type)
    return sorted(values)
