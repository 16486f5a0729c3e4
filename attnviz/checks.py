"""Settings checked before anything is loaded: values the schema's types allow but a run cannot use, and layer
indices. Model-free (the checkpoint's declared depth is read from its config.json only when asked)."""

from __future__ import annotations

from enum import Enum
from typing import Any, TypeVar

from attnviz.errors import AttnvizError
from attnviz.schema import AppConfig

E = TypeVar("E", bound=Enum)


def choice(enum: type[E], value: Any, key: str) -> E:
    """``value`` (a member or its name) as a member of ``enum``; a one-line error naming ``key`` otherwise. For the
    Python API: a composed config's choices are checked by Hydra already."""
    try:
        return enum(getattr(value, "value", value))
    except ValueError:
        names = ", ".join(str(m.value) for m in enum)
        raise AttnvizError(f"{key}={value!r}: use one of {names}") from None


def check_settings(app: AppConfig) -> None:
    """Raise AttnvizError (key, value, fix) for the first setting no run can use."""
    if app.generation.max_new_tokens < 1:
        raise AttnvizError(
            f"generation.max_new_tokens={app.generation.max_new_tokens} would generate no tokens, so there is "
            "nothing to show; set it to 1 or more"
        )
    if app.max_image_num < 0:
        raise AttnvizError(f"max_image_num={app.max_image_num} must be 0 or more")
    from attnviz.data import video_sampling

    video_sampling(app.dataset)  # the video sampling settings, checked before anything loads
    check_render_settings(app)


def check_render_settings(app: AppConfig) -> None:
    """The colour map and the video size, before a model loads: a typo must not cost a generation."""
    from attnviz.render.colors import colormap_lut
    from attnviz.render.frames import even_size, fit_font

    colormap_lut(app.render.colormap)
    fit_font(app.render, *even_size(app.video.width, app.video.height))


def resolve_layer(layer_idx: int, num_layers: int) -> int:
    """Negative indices count from the end, as in Python."""
    if not -num_layers <= layer_idx < num_layers:
        raise AttnvizError(
            f"layer_idx={layer_idx} is out of range: the model has {num_layers} decoder layers "
            f"(0..{num_layers - 1}, or -{num_layers}..-1)"
        )
    return layer_idx % num_layers


def resolve_layers(spec: Any, layer: int, num_layers: int) -> list[int]:
    """capture.layers (None | "all" | list of indices) plus the video's layer -> sorted absolute indices."""
    if spec is None:
        chosen: list[int] = []
    elif isinstance(spec, str):
        if spec != "all":
            raise AttnvizError(f"capture.layers={spec!r}: use a list of layer indices, 'all' or null")
        chosen = list(range(num_layers))
    else:
        chosen = [resolve_layer(int(i), num_layers) for i in spec]
    return sorted({*chosen, layer})


def check_layers(app: AppConfig) -> None:
    """``layer_idx`` and ``capture.layers`` against the checkpoint's declared depth, before any weight loads: a
    wrong index should not cost a checkpoint load."""
    from attnviz.models.checkpoint import declared_num_layers

    count = declared_num_layers(app.model.path)
    if count is not None:
        resolve_layers(app.capture.layers, resolve_layer(int(app.layer_idx), count), count)
