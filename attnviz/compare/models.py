"""``compare.models`` entries -> labelled model settings, and the layer each compared model reads.

An entry is a ``conf/model`` preset name (``demo``), a checkpoint folder (it inherits the run's ``model.*``
settings, the path replaced), or a mapping of ``model.*`` keys with optional ``preset`` (the preset it starts from)
and ``label`` (its name in every output). Pure: no model is loaded here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from attnviz.checks import resolve_layer, resolve_layers
from attnviz.comparison import layer_pairs
from attnviz.config import PROJECT_ROOT
from attnviz.errors import AttnvizError
from attnviz.schema import ModelConfig

PRESETS = PROJECT_ROOT / "conf" / "model"
ENTRY_KEYS = {"preset", "label"}


@dataclass(frozen=True)
class ComparedModel:
    """One checkpoint of a comparison: its label, settings, depth and the layers it reads."""

    label: str
    model: ModelConfig
    num_layers: int | None  # as its config.json declares (None: the files cannot tell; loading will say why)
    layer_match: str = "index"  # "index" | "relative depth": how reference layers map onto this model's
    pairs: tuple[tuple[int, int], ...] = ()  # (reference layer, this model's layer)

    def layer_of(self, reference_layer: int) -> int:
        return dict(self.pairs).get(reference_layer, reference_layer)


def preset(name: str) -> ModelConfig:
    """A ``conf/model`` member's settings over the schema's defaults (interpolations resolved)."""
    node = OmegaConf.load(PRESETS / f"{name}.yaml")
    node.pop("defaults", None)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(ModelConfig), node)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as err:
        raise AttnvizError(f"compare.models: model preset {name!r}: {str(err).splitlines()[0]}") from None


def is_preset(name: str) -> bool:
    return "/" not in name and (PRESETS / f"{name}.yaml").is_file()


def entry_settings(entry: Any, base: ModelConfig) -> tuple[str | None, ModelConfig]:
    """One entry -> (explicit label or None, its settings)."""
    if isinstance(entry, str):
        if is_preset(entry):
            return entry, preset(entry)
        return None, replace(base, path=entry, name=Path(entry).name or entry)
    if not isinstance(entry, dict):
        raise AttnvizError(f"compare.models: {entry!r} is neither a preset name, a checkpoint path nor a mapping")
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(entry) - fields - ENTRY_KEYS)
    if unknown:
        raise AttnvizError(f"compare.models: unknown key {unknown[0]!r} in {entry!r}; give model.* keys, "
                           "'preset' or 'label'")
    name = entry.get("preset")
    if name and not is_preset(name):
        raise AttnvizError(f"compare.models: no model preset {name!r} in conf/model")
    start = preset(name) if name else base
    settings = replace(start, **{k: v for k, v in entry.items() if k in fields})
    if "path" in entry and "name" not in entry and not name:
        settings = replace(settings, name=Path(str(entry["path"])).name)
    return entry.get("label") or name, settings


def labelled(entries: list[Any], base: ModelConfig) -> list[tuple[str, ModelConfig]]:
    """Every entry with a unique label (its own, its preset's, else the model's name); names as labels too."""
    if len(entries) < 2:
        raise AttnvizError(f"compare.models lists {len(entries)} model(s); a comparison needs 2 or more")
    out = []
    for entry in entries:
        label, settings = entry_settings(entry, base)
        label = str(label or settings.name)
        out.append((label, replace(settings, name=label)))
    labels = [label for label, _ in out]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise AttnvizError(f"compare.models: two models are labelled {twice[0]!r}; give each a distinct 'label'")
    bad = [label for label in labels if not label or "/" in label or label.startswith(".")]
    if bad:
        raise AttnvizError(f"compare.models: label {bad[0]!r} cannot name a folder; give a plain 'label'")
    return out


def compared_models(entries: list[Any], base: ModelConfig, layer_idx: int,
                    depth_of: Any) -> list[ComparedModel]:
    """Labels, settings and layer matching against the first (reference) model; ``depth_of(path)`` reads a
    checkpoint's declared depth (None when unknown)."""
    models = [(label, settings, depth_of(settings.path)) for label, settings in labelled(entries, base)]
    ref_depth = models[0][2]
    out = []
    for label, settings, depth in models:
        if ref_depth is None or depth is None:
            out.append(ComparedModel(label, settings, depth))
            continue
        match, pairs = layer_pairs(ref_depth, depth)
        out.append(ComparedModel(label, settings, depth, match, tuple(pairs)))
    if ref_depth is not None:
        resolve_layer(int(layer_idx), ref_depth)  # a bad index: one line, before any model loads
    return out


def mapped_layers(spec: Any, model: ComparedModel, reference: ComparedModel, ref_layer: int) -> Any:
    """A layer list given for the reference (``capture.layers``, ``metrics.layers``) in ``model``'s indices;
    ``all`` and null stay as they are."""
    if not isinstance(spec, list | tuple) or reference.num_layers is None:
        return spec
    return sorted({model.layer_of(layer) for layer in resolve_layers(list(spec), ref_layer, reference.num_layers)})
