"""Sample + model -> Trace: build the prompt, generate with capture, label tokens, lay out the images."""

from __future__ import annotations

from typing import Any

from PIL import Image

from attnviz.capture.generate import generate_with_capture
from attnviz.data import Sample
from attnviz.errors import AttnvizError
from attnviz.models.loading import LoadedModel
from attnviz.models.tokens import special_token_ids, token_kinds, token_texts
from attnviz.trace import Trace


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


def build_trace(
    loaded: LoadedModel,
    sample: Sample,
    images: list[Image.Image],
    layers: list[int],
    gen_cfg: Any,
    prompt_template: str,
) -> tuple[Trace, str]:
    """Generate the answer for ``sample`` and capture the rows of ``layers``; returns the trace and the prompt."""
    adapter = loaded.adapter
    prompt = adapter.build_prompt(prompt_template.format(Question=sample.problem), len(images))
    inputs = adapter.prepare_inputs(prompt, images)
    geometry = adapter.image_geometry(inputs)
    inputs = {k: v.to(loaded.device) if hasattr(v, "to") else v for k, v in inputs.items()}
    generated, recorder = generate_with_capture(loaded.model, inputs, layers, gen_cfg)
    if not generated:
        raise AttnvizError("generation produced no tokens; raise generation.max_new_tokens")
    prompt_ids = inputs["input_ids"][0].tolist()
    ids = prompt_ids + generated
    width = len(ids) - 1  # the last row (producing the last token) spans every key but that token
    trace = Trace(
        token_ids=ids,
        token_texts=token_texts(adapter.tokenizer, ids),
        token_kinds=token_kinds(ids, adapter.image_token_id(), special_token_ids(adapter.tokenizer)),
        prompt_len=len(prompt_ids),
        images=geometry,
        rows={layer: recorder.stacked(layer, width) for layer in layers},
    )
    return trace, prompt
