"""Tiny twins of the later families (Gemma 3, InternVL3, Idefics3, SmolVLM2, Mistral 3, GLM-4.1V), built like those
in tests/twins.py (which registers them: ``build_twin``, ``twin_dir``), and the check that each reloads offline as a
real checkpoint does: ``HF_HUB_OFFLINE=1``, ``AutoProcessor`` / ``AutoConfig`` from the folder alone, the family's
processor class and its real chat template."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
import transformers as tf
from transformers import AutoConfig, AutoProcessor

from tests import twin_templates as templates
from tests.twins import HIDDEN, QWEN_SPECIALS, _ids, _text, build_tokenizer

GEMMA_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>",
                  "<end_of_image>", "<image_soft_token>"]
GEMMA_NAMED = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"}


def gemma3() -> tuple[Any, Any]:
    """SigLIP 64 px / 8-px patches (8x8) pooled 2x2 to 4x4 = 16 tokens per image (real: 896 px, 64x64 -> 16x16); a
    sliding layer (window 8: shorter than every prompt), then a global one; the tokenizer adds <bos> as Gemma's does."""
    tokenizer = build_tokenizer(GEMMA_SPECIALS, "<bos>", "<eos>", "<pad>", named=GEMMA_NAMED)
    tokenizer.add_bos_token = True
    text_config = _text(tokenizer, head_dim=16, query_pre_attn_scalar=16, sliding_window=8,
                        layer_types=["sliding_attention", "full_attention"])
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": 64, "patch_size": 8, "vision_use_head": False}
    boi, eoi, image = _ids(tokenizer, *GEMMA_NAMED.values())
    config = tf.Gemma3Config(
        text_config=text_config, vision_config=vision, mm_tokens_per_image=16, boi_token_index=boi,
        eoi_token_index=eoi, image_token_index=image,
    )
    image_processor = tf.Gemma3ImageProcessor(size={"height": 64, "width": 64}, image_mean=[0.5] * 3,
                                              image_std=[0.5] * 3)
    processor = tf.Gemma3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_length=16,
                                   chat_template=templates.GEMMA3)
    return tf.Gemma3ForConditionalGeneration(config), processor


INTERNVL_NAMED = {"start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>",
                  "video_token": "<video>"}


def internvl() -> tuple[Any, Any]:
    """InternViT 32-px tiles of 4-px patches (8x8), pixel-shuffled 2x2 to 4x4 = 16 tokens a tile (real: 448 px,
    32x32 -> 16x16), up to 6 tiles plus a thumbnail; a Qwen2 decoder."""
    tokenizer = build_tokenizer(QWEN_SPECIALS[:3] + list(INTERNVL_NAMED.values()), None, "<|im_end|>",
                                "<|endoftext|>", named=INTERNVL_NAMED)
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": [32, 32], "patch_size": [4, 4]}
    config = tf.InternVLConfig(
        vision_config=vision, text_config={"model_type": "qwen2", **_text(tokenizer)}, image_seq_length=16,
        image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"),
    )
    image_processor = tf.GotOcr2ImageProcessor(size={"height": 32, "width": 32}, crop_to_patches=True,
                                               max_patches=6, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processor = tf.InternVLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, image_seq_length=16,
        video_processor=tf.InternVLVideoProcessor(), chat_template=templates.INTERNVL3,
    )
    return tf.InternVLForConditionalGeneration(config), processor


IDEFICS_SPECIALS = ["<fake_token_around_image>", "<image>", "<global-img>", "<end_of_utterance>", "<video>",
                    *[f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]]


def _idefics(family: str) -> tuple[Any, Any]:
    """SigLIP 32-px tiles of 4-px patches (8x8), pixel-shuffled 2x2 to 4x4 = 16 tokens a tile (real SmolVLM2: 512
    px, 32x32 -> 8x8), images up to 96 px cut into 32-px tiles plus the global image; a Llama decoder."""
    bos = "<|begin_of_text|>" if family == "idefics3" else "<|im_start|>"  # Llama 3's BOS / SmolLM2's
    tokenizer = build_tokenizer([bos, "<|end_of_text|>", *IDEFICS_SPECIALS], bos, "<end_of_utterance>",
                                "<|end_of_text|>")
    tokenizer.add_bos_token = family == "idefics3"  # Llama 3's tokenizer adds its BOS, SmolLM2's does not
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 4}
    config_cls = tf.Idefics3Config if family == "idefics3" else tf.SmolVLMConfig
    config = config_cls(vision_config=vision, text_config={"model_type": "llama", **_text(tokenizer)}, scale_factor=2,
                        image_token_id=tokenizer.convert_tokens_to_ids("<image>"))
    image_processor = tf.Idefics3ImageProcessor(size={"longest_edge": 96}, max_image_size={"longest_edge": 32},
                                                do_image_splitting=True, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    if family == "idefics3":
        processor = tf.Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=16,
                                         chat_template=templates.IDEFICS3)
        return tf.Idefics3ForConditionalGeneration(config), processor
    pytest.importorskip("num2words", reason="SmolVLM's processor needs num2words (pip install num2words)")
    processor = tf.SmolVLMProcessor(
        image_processor=tf.SmolVLMImageProcessor(**image_processor.to_dict()), tokenizer=tokenizer, image_seq_len=16,
        video_processor=tf.SmolVLMVideoProcessor(), chat_template=templates.SMOLVLM2,
    )
    return tf.SmolVLMForConditionalGeneration(config), processor


MISTRAL_SPECIALS = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[IMG]", "[IMG_BREAK]", "[IMG_END]", "[SYSTEM_PROMPT]",
                    "[/SYSTEM_PROMPT]"]


def mistral3() -> tuple[Any, Any]:
    """Pixtral with 4-px patches on images up to 64 px, patches merged 2x2 (real: 14 px, 1540 px, 2x2): one [IMG] per
    8x8 px cell, [IMG_BREAK] after each row, [IMG_END] last; the tokenizer adds <s> as Mistral's does."""
    tokenizer = build_tokenizer(MISTRAL_SPECIALS, "<s>", "</s>", "</s>")
    tokenizer.add_bos_token = True
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "head_dim": 16, "image_size": 64, "patch_size": 4}
    config = tf.Mistral3Config(
        vision_config=vision, text_config={"model_type": "mistral", **_text(tokenizer, head_dim=16)},
        spatial_merge_size=2, image_token_index=tokenizer.convert_tokens_to_ids("[IMG]"),
    )
    image_processor = tf.PixtralImageProcessor(size={"longest_edge": 64}, patch_size=8, image_mean=[0.5] * 3,
                                               image_std=[0.5] * 3)
    processor = tf.PixtralProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=4,
                                    spatial_merge_size=2, chat_template=templates.MISTRAL3)
    return tf.Mistral3ForConditionalGeneration(config), processor


GLM_SPECIALS = ["<|endoftext|>", "[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>",
                "<|begin_of_image|>", "<|end_of_image|>", "<|begin_of_video|>", "<|end_of_video|>", "<|image|>",
                "<|video|>", "<|begin_of_box|>", "<|end_of_box|>"]


def glm4v() -> tuple[Any, Any]:
    """GLM-4.1V: Qwen2-VL-like 14-px patches merged 2x2 (by a strided convolution) into 28-px cells, images of 56² to
    112² px; its reasoning tags are plain added tokens, as in GLM-4.1V-9B-Thinking's vocabulary."""
    tokenizer = build_tokenizer(GLM_SPECIALS, None, "<|endoftext|>", "<|endoftext|>")
    tokenizer.add_tokens(["<think>", "</think>", "<answer>", "</answer>"])
    ids = dict(zip(("image_start", "image_end", "video_start", "video_end", "image", "video"),
                   _ids(tokenizer, *GLM_SPECIALS[7:13]), strict=True))
    mrope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [1, 1, 2], "partial_rotary_factor": 0.5}
    vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": HIDDEN,
              "image_size": 56, "patch_size": 14}
    config = tf.Glm4vConfig(
        text_config=_text(tokenizer, rope_parameters=mrope), vision_config=vision,
        **{f"{name}_token_id": value for name, value in ids.items()},
    )
    processor = tf.Glm4vProcessor(
        # GLM counts an image's pixels twice (two temporal frames): up to 112x112 px
        image_processor=tf.Glm4vImageProcessor(size={"shortest_edge": 56 * 56, "longest_edge": 2 * 112 * 112}),
        tokenizer=tokenizer, video_processor=tf.Glm4vVideoProcessor(), chat_template=templates.GLM4V,
    )
    return tf.Glm4vForConditionalGeneration(config), processor


LATER_BUILDERS: dict[str, Callable[[], tuple[Any, Any]]] = {
    "gemma3": gemma3, "internvl": internvl, "idefics3": lambda: _idefics("idefics3"),
    "smolvlm": lambda: _idefics("smolvlm"), "mistral3": mistral3, "glm4v": glm4v,
}
PROCESSORS = {"gemma3": "Gemma3Processor", "internvl": "InternVLProcessor", "idefics3": "Idefics3Processor",
              "smolvlm": "SmolVLMProcessor", "mistral3": "PixtralProcessor", "glm4v": "Glm4vProcessor"}
TEMPLATES = {"gemma3": templates.GEMMA3, "internvl": templates.INTERNVL3, "idefics3": templates.IDEFICS3,
             "smolvlm": templates.SMOLVLM2, "mistral3": templates.MISTRAL3, "glm4v": templates.GLM4V}


@pytest.mark.parametrize("family", list(LATER_BUILDERS))
def test_the_twin_reloads_offline_like_a_checkpoint(twin_dir, family):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # set by conftest before transformers is imported
    folder = twin_dir(family)
    processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
    assert type(processor).__name__ == PROCESSORS[family] and processor.chat_template == TEMPLATES[family]
    assert AutoConfig.from_pretrained(folder, local_files_only=True).model_type == family
