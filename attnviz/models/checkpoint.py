"""What a checkpoint folder must hold before anything is loaded from it, and what attnviz refuses to run.

Checked from the files alone (no transformers call), so a wrong path or a missing file fails in a second with a
line that says which file, and nothing is ever sent to a model hub: attnviz loads local folders only.

Safety: weights load from safetensors only, unless ``model.allow_pickle=true`` (unpickling a ``.bin`` can run
code); a checkpoint's own Python code (``auto_map`` in its config) runs only when the model type is unknown to
transformers and ``model.trust_remote_code=true``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import transformers
from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

from attnviz.errors import AttnvizError
from attnviz.models import supported_summary

log = logging.getLogger(__name__)
PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt")  # torch.load formats: unpickling can run code
# Image (or video) preprocessing config: a vision-language checkpoint needs one of these beside the tokenizer.
IMAGE_PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


@dataclass(frozen=True)
class Checkpoint:
    """A checked local checkpoint folder and how to load it."""

    folder: Path
    model_type: str
    use_safetensors: bool  # False only for pickle weights the user allowed
    trust_remote_code: bool  # True only when the checkpoint needs its own code and the user allowed it


def check_checkpoint(path: str, *, allow_pickle: bool = False, trust_remote_code: bool = False) -> Checkpoint:
    """Check ``model.path`` from its files; raises AttnvizError naming the file and the fix."""
    folder = _folder(path)
    config = _read_config(folder, path)
    model_type = str(config.get("model_type", ""))
    _check_model_type(config, path, trust_remote_code)
    use_safetensors = _check_weights(folder, path, allow_pickle)
    _check_processor(folder, path, has_vision="vision_config" in config)
    return Checkpoint(folder, model_type, use_safetensors, trust_remote_code and asks_for_code(folder))


def declared_num_layers(path: str) -> int | None:
    """Decoder layers the checkpoint's config.json declares (its text model's, as the loaded model reports them),
    or None when the files cannot tell: loading the model then reports what is wrong with them."""
    try:
        config = _read_config(_folder(str(path)), str(path))
    except AttnvizError:
        return None
    count = (config.get("text_config") or config).get("num_hidden_layers", config.get("num_hidden_layers"))
    return count if isinstance(count, int) and count > 0 else None


def needs_remote_code(config: dict[str, Any]) -> bool:
    """The model cannot load without the checkpoint's own code: ``auto_map`` and a type transformers lacks."""
    return bool(config.get("auto_map")) and config.get("model_type") not in CONFIG_MAPPING_NAMES


def asks_for_code(folder: Path) -> bool:
    """Any of the checkpoint's configs names its own classes (``auto_map``): transformers would import them."""
    for name in ("config.json", *IMAGE_PROCESSOR_FILES, "tokenizer_config.json"):
        try:
            if json.loads((folder / name).read_text(encoding="utf-8")).get("auto_map"):
                return True
        except (OSError, ValueError, AttributeError):
            continue
    return False


def _check_model_type(config: dict[str, Any], path: str, trust_remote_code: bool) -> None:
    """Decided before transformers reads the folder: an unknown type would otherwise import the folder's code."""
    model_type = config.get("model_type")
    version = f"transformers {transformers.__version__}"
    if needs_remote_code(config) and not trust_remote_code:
        raise AttnvizError(
            f"model.path={path}: model type {model_type!r} is not built into {version} and its config.json asks "
            "to run the checkpoint's own Python code (auto_map); attnviz runs no checkpoint code unless "
            "model.trust_remote_code=true (only for code you have read)"
        )
    if model_type not in CONFIG_MAPPING_NAMES:  # no adapter serves a type transformers does not build in
        raise AttnvizError(
            f"model.path={path}: unsupported model type {model_type!r} (config.json, unknown to {version}); "
            f"supported: {supported_summary()}"
        )


def _folder(path: str) -> Path:
    folder = Path(path).expanduser()
    if folder.is_dir():
        return folder
    looks_like_hub_id = not folder.exists() and path.count("/") == 1 and not path.startswith((".", "/", "~"))
    hint = (
        f"attnviz loads local folders only: download it first (hf download {path} --local-dir <folder>) "
        "and set model.path to that folder"
        if looks_like_hub_id
        else "point it at a local checkpoint folder (config.json, *.safetensors, processor files)"
    )
    raise AttnvizError(f"model.path={path} is not a folder; {hint}")


def _read_config(folder: Path, path: str) -> dict[str, Any]:
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise AttnvizError(f"model.path={path} has no config.json; point it at a transformers checkpoint folder")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise AttnvizError(f"model.path={path}: config.json is not valid JSON ({err}); re-download it") from None
    if not isinstance(config, dict):
        raise AttnvizError(f"model.path={path}: config.json holds no JSON object; re-download it")
    return config


def _check_weights(folder: Path, path: str, allow_pickle: bool) -> bool:
    """True: load safetensors. False: only pickle weights, and the user allowed them."""
    if any(folder.glob("*.safetensors")):
        return True
    pickles = sorted(p.name for pattern in PICKLE_WEIGHTS for p in folder.glob(pattern))
    if not pickles:
        raise AttnvizError(
            f"model.path={path} holds no weights (*.safetensors); copy the weight files into that folder"
        )
    if not allow_pickle:
        raise AttnvizError(
            f"model.path={path} holds only pickle weights ({', '.join(pickles[:3])}), which can run code when "
            "loaded; convert them to safetensors, or set model.allow_pickle=true if you trust this checkpoint"
        )
    log.warning("model.allow_pickle=true: loading pickle weights %s from %s", ", ".join(pickles[:3]), folder)
    return False


def _check_processor(folder: Path, path: str, has_vision: bool) -> None:
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise AttnvizError(
            f"model.path={path} has no tokenizer files ({', '.join(TOKENIZER_FILES[:2])}); copy them from the "
            "base model's folder (or save the processor there with processor.save_pretrained)"
        )
    if has_vision and not any((folder / name).is_file() for name in IMAGE_PROCESSOR_FILES):
        raise AttnvizError(
            f"model.path={path} has no processor config ({' or '.join(IMAGE_PROCESSOR_FILES)}); copy it from the "
            "base model's folder (or save the processor there with processor.save_pretrained)"
        )
