"""Tiny random twins of every supported model family, saved like real checkpoints.

Each twin is built from the family's transformers config classes (hidden size 64, 2 decoder layers, a 2-layer
vision tower with small images), with an offline processor (a small byte-level BPE carrying the family's special
tokens, the family's image processor and its real chat template) saved beside it. The folder reloads with
``HF_HUB_OFFLINE=1`` through ``AutoProcessor`` + ``AutoModelForImageTextToText`` (``AutoModelForCausalLM`` for
"text") exactly as a real checkpoint does. Weights are random (seeded): twins prove loading, prompts, capture and
geometry, not answers. The later families' builders (Gemma 3, InternVL3, Idefics3, SmolVLM2, Mistral 3, GLM-4.1V)
live in tests/test_family_twins.py, with the check that each reloads offline; ``build_twin`` builds them all.

    folder = build_twin("llava_next", tmp_path / "llava_next")
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers as tf
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import AddedToken, Qwen2Tokenizer

from tests import twin_templates as templates

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "llava", "llava_next", "llava_onevision", "text", "gemma3",
            "internvl", "idefics3", "smolvlm", "mistral3", "glm4v")
HIDDEN = 64
QWEN_SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>",
]
LLAMA_SPECIALS = ["<unk>", "<s>", "</s>", "<image>", "<pad>"]
ONEVISION_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]
ROLE_WORDS = ["system\n", "user\n", "assistant\n", "USER: ", "ASSISTANT:", "[INST] ", " [/INST]", "Picture 1: "]
TILE = 56  # LLaVA twins: vision tower input size (real: 336 CLIP, 384 SigLIP); patch 14 -> 4x4 tokens per tile


def build_tokenizer(
    specials: list[str], bos: str | None, eos: str, pad: str, named: dict[str, str] | None = None
) -> Qwen2Tokenizer:
    """A small byte-level BPE (the demo's recipe and corpus) carrying ``specials`` as special tokens; ``named``:
    the family's named extras (Gemma's ``boi_token``, ...), which its processor reads off the tokenizer."""
    from attnviz.demo import build

    raw = Tokenizer(models.BPE())
    raw.normalizer = normalizers.NFC()
    raw.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(build.PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=512, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(build.tokenizer_corpus() + ROLE_WORDS * 4, trainer=trainer)
    model = json.loads(raw.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tokenizer = Qwen2Tokenizer(
        vocab=model["vocab"], merges=merges, model_max_length=32768, extra_special_tokens=named or None
    )
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    if bos is not None:
        tokenizer.bos_token = bos
    tokenizer.eos_token = eos
    tokenizer.pad_token = pad
    return tokenizer


def _ids(tokenizer: Qwen2Tokenizer, *tokens: str) -> list[int]:
    return [tokenizer.convert_tokens_to_ids(t) for t in tokens]


def _text(tokenizer: Qwen2Tokenizer, **extra: Any) -> dict[str, Any]:
    """A 2-layer decoder with GQA (4 query heads over 2 kv heads), head dim 16."""
    return {
        "vocab_size": len(tokenizer), "hidden_size": HIDDEN, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096,
        **_bos_eos_pad(tokenizer), **extra,
    }


def _bos_eos_pad(tokenizer: Qwen2Tokenizer) -> dict[str, int]:
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.pad_token_id
    return {"bos_token_id": bos, "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}


def _qwen_tokens(tokenizer: Qwen2Tokenizer) -> dict[str, int]:
    image, video, start, end = _ids(tokenizer, "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")
    return {"image_token_id": image, "video_token_id": video, "vision_start_token_id": start,
            "vision_end_token_id": end, **_bos_eos_pad(tokenizer)}


def _qwen_tokenizer() -> Qwen2Tokenizer:
    return build_tokenizer(QWEN_SPECIALS, None, "<|im_end|>", "<|endoftext|>")


def qwen2_vl() -> tuple[Any, Any]:
    tokenizer = _qwen_tokenizer()
    mrope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}
    config = tf.Qwen2VLConfig(
        text_config=_text(tokenizer, rope_parameters=mrope),
        vision_config={"depth": 2, "embed_dim": 32, "num_heads": 2, "hidden_size": HIDDEN, "mlp_ratio": 2},
        **_qwen_tokens(tokenizer),
    )
    return tf.Qwen2VLForConditionalGeneration(config), _qwen2_processor(tf.Qwen2VLProcessor, tokenizer)


def _qwen2_processor(processor_cls: type, tokenizer: Any) -> Any:
    """Qwen2-VL's and Qwen2.5-VL's processors share their image/video processors and chat template."""
    return processor_cls(
        image_processor=tf.Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=112 * 112),
        tokenizer=tokenizer, video_processor=tf.Qwen2VLVideoProcessor(min_pixels=56 * 56, max_pixels=84 * 84),
        chat_template=templates.QWEN2_VL,
    )


def qwen2_5_vl() -> tuple[Any, Any]:
    tokenizer = _qwen_tokenizer()
    mrope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}
    vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": HIDDEN,
              "window_size": 56, "fullatt_block_indexes": [1]}
    config = tf.Qwen2_5_VLConfig(
        text_config=_text(tokenizer, rope_parameters=mrope), vision_config=vision, **_qwen_tokens(tokenizer)
    )
    return tf.Qwen2_5_VLForConditionalGeneration(config), _qwen2_processor(tf.Qwen2_5_VLProcessor, tokenizer)


def qwen3_vl() -> tuple[Any, Any]:
    tokenizer = _qwen_tokenizer()
    mrope = {"rope_type": "default", "rope_theta": 5000.0, "mrope_section": [2, 3, 3], "mrope_interleaved": True}
    vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": HIDDEN,
              "patch_size": 16, "num_position_embeddings": 64, "deepstack_visual_indexes": [0]}
    config = tf.Qwen3VLConfig(
        text_config=_text(tokenizer, rope_parameters=mrope, head_dim=16), vision_config=vision,
        **_qwen_tokens(tokenizer),
    )
    image_processor = tf.Qwen2VLImageProcessor(
        patch_size=16, merge_size=2, min_pixels=64 * 64, max_pixels=128 * 128,
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
    )
    processor = tf.Qwen3VLProcessor(
        image_processor=image_processor, tokenizer=tokenizer,
        # Qwen3-VL's video pixel limits count the whole clip: up to 16 frames of 96x96 px, none enlarged
        video_processor=tf.Qwen3VLVideoProcessor(patch_size=16, size={"shortest_edge": 64 * 64,
                                                                     "longest_edge": 16 * 96 * 96}),
        chat_template=templates.QWEN3_VL,
    )
    return tf.Qwen3VLForConditionalGeneration(config), processor


def _clip_vision() -> dict[str, Any]:
    return {"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "image_size": TILE, "patch_size": 14, "projection_dim": 32}


def _llama_tokenizer() -> Qwen2Tokenizer:
    return build_tokenizer(LLAMA_SPECIALS, "<s>", "</s>", "<pad>")


def llava() -> tuple[Any, Any]:
    tokenizer = _llama_tokenizer()
    config = tf.LlavaConfig(
        vision_config=_clip_vision(), text_config={"model_type": "llama", **_text(tokenizer)},
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), vision_feature_layer=-2,
        vision_feature_select_strategy="default", image_seq_length=(TILE // 14) ** 2,
    )
    image_processor = tf.CLIPImageProcessor(
        size={"shortest_edge": TILE}, crop_size={"height": TILE, "width": TILE}, do_center_crop=True
    )
    processor = tf.LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=14, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=templates.LLAVA_1_5,
    )
    return tf.LlavaForConditionalGeneration(config), processor


def _pinpoints(max_tiles: int) -> list[list[int]]:
    """Grid shapes (rows, cols) of up to ``max_tiles`` per side, in pixels of TILE-sized tiles."""
    return [[TILE * r, TILE * c] for r in range(1, max_tiles + 1) for c in range(1, max_tiles + 1)]


def llava_next() -> tuple[Any, Any]:
    tokenizer = _llama_tokenizer()
    pinpoints = [[TILE, 2 * TILE], [2 * TILE, TILE], [2 * TILE, 2 * TILE], [3 * TILE, TILE], [TILE, 3 * TILE]]
    config = tf.LlavaNextConfig(
        vision_config=_clip_vision(), text_config={"model_type": "mistral", **_text(tokenizer)},
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), vision_feature_layer=-2,
        vision_feature_select_strategy="default", image_grid_pinpoints=pinpoints,
        image_seq_length=(TILE // 14) ** 2,
    )
    image_processor = tf.LlavaNextImageProcessor(
        size={"shortest_edge": TILE}, crop_size={"height": TILE, "width": TILE}, image_grid_pinpoints=pinpoints
    )
    processor = tf.LlavaNextProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=14, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=templates.LLAVA_NEXT_MISTRAL,
    )
    return tf.LlavaNextForConditionalGeneration(config), processor


def llava_onevision() -> tuple[Any, Any]:
    tokenizer = build_tokenizer(ONEVISION_SPECIALS, None, "<|im_end|>", "<|endoftext|>")
    vision = {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": TILE, "patch_size": 14}
    image_id, video_id = _ids(tokenizer, "<image>", "<video>")
    config = tf.LlavaOnevisionConfig(
        vision_config=vision, text_config={"model_type": "qwen2", **_text(tokenizer)},
        image_token_id=image_id, video_token_id=video_id, vision_feature_layer=-1,
        vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_9",
        image_grid_pinpoints=_pinpoints(6),
    )
    image_processor = tf.LlavaOnevisionImageProcessor(
        size={"height": TILE, "width": TILE}, image_grid_pinpoints=_pinpoints(6),
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
    )
    processor = tf.LlavaOnevisionProcessor(
        image_processor=image_processor, tokenizer=tokenizer,
        video_processor=tf.LlavaOnevisionVideoProcessor(size={"height": TILE, "width": TILE}),
        num_image_tokens=(TILE // 14) ** 2, vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_9", chat_template=templates.LLAVA_ONEVISION,
    )
    return tf.LlavaOnevisionForConditionalGeneration(config), processor


def text() -> tuple[Any, Any]:
    tokenizer = build_tokenizer(QWEN_SPECIALS[:3], None, "<|im_end|>", "<|endoftext|>")
    tokenizer.chat_template = templates.QWEN2_INSTRUCT
    config = tf.Qwen2Config(**_text(tokenizer, rope_parameters={"rope_type": "default", "rope_theta": 10000.0}))
    return tf.Qwen2ForCausalLM(config), tokenizer


BUILDERS: dict[str, Callable[[], tuple[Any, Any]]] = {
    "qwen2_vl": qwen2_vl, "qwen2_5_vl": qwen2_5_vl, "qwen3_vl": qwen3_vl, "llava": llava,
    "llava_next": llava_next, "llava_onevision": llava_onevision, "text": text,
}


def builder(family: str) -> Callable[[], tuple[Any, Any]]:
    """The family's twin builder: the first families' here, the later ones' in tests/test_family_twins.py (imported
    on first use: it builds on this module's helpers)."""
    from tests.test_family_twins import LATER_BUILDERS

    builders = {**BUILDERS, **LATER_BUILDERS}
    if family not in builders:
        raise ValueError(f"unknown family {family!r}; one of {', '.join(FAMILIES)}")
    return builders[family]


def build_twin(family: str, folder: Path, seed: int = 0) -> Path:
    """Build the ``family`` twin (random weights from ``seed``) and save model + processor into ``folder``."""
    make = builder(family)
    torch.manual_seed(seed)
    model, processor = make()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def twin_dir(tmp_path_factory) -> Callable[[str], Path]:
    """``twin_dir(family)`` -> the family's twin folder, built once per test session."""
    built: dict[str, Path] = {}

    def _twin(family: str) -> Path:
        if family not in built:
            built[family] = build_twin(family, tmp_path_factory.mktemp(f"twin_{family}"))
        return built[family]

    return _twin
