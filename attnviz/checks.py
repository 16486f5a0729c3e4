"""Settings checked before anything is loaded: values the schema's types allow but a run cannot use."""

from __future__ import annotations

from typing import Any

from attnviz.errors import AttnvizError


def check_settings(cfg: Any) -> None:
    """Raise AttnvizError (key, value, fix) for the first setting no run can use."""
    generation = cfg.get("generation")
    if generation is not None and int(generation.max_new_tokens) < 1:
        raise AttnvizError(
            f"generation.max_new_tokens={generation.max_new_tokens} would generate no tokens, so there is "
            "nothing to show; set it to 1 or more"
        )
    if int(cfg.get("max_image_num", 1)) < 0:
        raise AttnvizError(f"max_image_num={cfg.max_image_num} must be 0 or more")


def check_layers(cfg: Any) -> None:
    """``layer_idx`` and ``capture.layers`` against the checkpoint's declared depth, before any weight loads: a
    wrong index should not cost a checkpoint load."""
    from attnviz.models.checkpoint import declared_num_layers
    from attnviz.tracing import resolve_layer, resolve_layers

    count = declared_num_layers(cfg.model.path)
    if count is not None:
        resolve_layers(cfg.capture.get("layers"), resolve_layer(int(cfg.layer_idx), count), count)
