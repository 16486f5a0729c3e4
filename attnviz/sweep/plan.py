"""Which layers a sweep renders, read from its overrides, so one generation captures them all."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from attnviz.sweep.overrides import SweepOverrides, parse_sweep

log = logging.getLogger(__name__)
LAYER_KEY = "layer_idx"


def sweep_layers(sweep: SweepOverrides) -> list[int]:
    """The ``layer_idx`` values of a parsed sweep, sorted.

    Empty when the sweep does not list layers, or lists them in a form that cannot be enumerated (an
    interval for an optimising sweeper): jobs then capture their own layer and share when they can.
    """
    values = sweep.values(LAYER_KEY)
    if values is None:
        log.info("%s is swept in a form that cannot be listed: layers are captured job by job", LAYER_KEY)
        return []
    return sorted({int(value) for value in values if value is not None})  # None: ~layer_idx


def swept_layers(overrides: Iterable[str], sweeper_params: Mapping[str, Any] | None = None) -> list[int]:
    """``layer_idx`` values of a multirun (``layer_idx=0,1,2``, ``range(0,4)``, hydra.sweeper.params) -> sorted."""
    return sweep_layers(parse_sweep(overrides, sweeper_params))
