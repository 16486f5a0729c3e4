"""Build the demo's tokenizer, processor and model config offline, and encode samples the way the tool does.

Everything comes from transformers' own classes (Qwen2-VL architecture, Qwen2 byte-level BPE, Qwen2-VL's real
chat template), so the saved folder reloads through ``AutoProcessor`` / ``AutoModelForImageTextToText`` exactly
like a real checkpoint.
"""

from __future__ import annotations

import json

import torch
from PIL import Image
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import (
    AddedToken,
    BatchFeature,
    Qwen2Tokenizer,
    Qwen2VLConfig,
    Qwen2VLImageProcessor,
    Qwen2VLProcessor,
    Qwen2VLVideoProcessor,
)

from attnviz.demo import synth
from attnviz.models.base import chat_prompt
from attnviz.schema import REASON_RFT_PROMPT

# Qwen2-VL's added tokens, in the real tokenizer's order (ids differ: ours start at 0).
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# Qwen2-VL-Instruct's chat template, verbatim (adds the default system prompt).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in "
    "messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful "
    "assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string "
    "%}{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}{% if "
    "content['type'] == 'image' or 'image' in content or 'image_url' in content %}{% set image_count.value = "
    "image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif "
    "%}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content "
    "%}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value "
    "}}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ "
    "content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt "
    "%}<|im_start|>assistant\n{% endif %}"
)
# Qwen2's pre-tokenizer split: digits one per token, so each coordinate is exactly one token.
PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"""
    r"""\s+(?!\S)|\s+"""
)
# An upper bound: BPE stops merging once every word of the small corpus is one token (424 tokens), which
# keeps the prompt short (68 text tokens) and so training fast.
VOCAB_SIZE = 1024
# 3136 = 4 merged cells minimum (Reason-RFT's value); the maximum keeps 224x224 and 320x240 (-> 308x252) at
# their natural size while bounding the token count of a large user image on a CPU.
MIN_PIXELS = 56 * 56
MAX_PIXELS = 448 * 448


def tokenizer_corpus() -> list[str]:
    """Every string the demo's prompts and answers are made of (byte-level BPE still encodes any text)."""
    answers = [synth.format_answer((c, r), k, n) for c in range(8) for r in range(8) for n in (1, 2) for k in (0, 1)]
    texts = [synth.PROBLEM_ONE, synth.PROBLEM_TWO, synth.PROMPT_SUFFIX, synth.THINK, "You are a helpful assistant."]
    texts += ["system\n", "user\n", "assistant\n", "Picture 1: ", "Video 1: "]
    texts += [f"{synth.THINK}<answer>{a}</answer>" for a in answers]
    return texts * 4


def build_tokenizer(vocab_size: int = VOCAB_SIZE) -> Qwen2Tokenizer:
    """Train a small byte-level BPE with Qwen2's normaliser/pre-tokenizer and wrap it as a Qwen2Tokenizer."""
    raw = Tokenizer(models.BPE())
    raw.normalizer = normalizers.NFC()
    raw.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(tokenizer_corpus(), trainer=trainer)
    model = json.loads(raw.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tokenizer = Qwen2Tokenizer(vocab=model["vocab"], merges=merges, model_max_length=32768)
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tokenizer.eos_token = "<|im_end|>"  # generation stops at the end of the assistant turn
    tokenizer.pad_token = "<|endoftext|>"
    return tokenizer


def build_processor(tokenizer: Qwen2Tokenizer | None = None) -> Qwen2VLProcessor:
    """The offline processor (no hub): Qwen2-VL image/video processors + our tokenizer + the real template."""
    return Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS),
        tokenizer=tokenizer if tokenizer is not None else build_tokenizer(),
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=CHAT_TEMPLATE,
    )


def build_config(tokenizer: Qwen2Tokenizer) -> Qwen2VLConfig:
    """A ~1.37M-parameter Qwen2-VL whose text RoPE can tell 8 columns apart.

    Why rope_theta 10: M-RoPE gives the width section the lowest frequencies; at the usual 1e4 (head dim 32)
    neighbouring columns rotate almost identically (a first experiment never learnt positions with it).
    """
    ids = tokenizer.convert_tokens_to_ids
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 128,
        "intermediate_size": 512,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10.0, "mrope_section": [4, 6, 6]},
        "bos_token_id": ids("<|endoftext|>"),
        "eos_token_id": ids("<|im_end|>"),
        "pad_token_id": ids("<|endoftext|>"),
    }
    vision = {"depth": 2, "embed_dim": 64, "num_heads": 4, "hidden_size": 128, "mlp_ratio": 4}
    return Qwen2VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        bos_token_id=ids("<|endoftext|>"),
        eos_token_id=ids("<|im_end|>"),
        pad_token_id=ids("<|endoftext|>"),
    )


def build_prompt(processor: Qwen2VLProcessor, n_images: int, problem: str) -> str:
    """The exact prompt attnviz builds: every image, then the problem in Reason-RFT's question template."""
    return chat_prompt(processor, REASON_RFT_PROMPT.format(Question=problem), n_images)


def encode(
    processor: Qwen2VLProcessor, images: list[list[Image.Image]], problems: list[str], answers: list[str] | None
) -> BatchFeature:
    """Processor inputs for a batch; with answers, prompt + answer + <|im_end|> and `labels` on the answer only.

    All samples of a batch must share their layout (same image count and sizes) so no padding is needed.
    """
    prompts = [build_prompt(processor, len(imgs), p) for imgs, p in zip(images, problems, strict=True)]
    if answers is None:
        return processor(text=prompts, images=images, return_tensors="pt")
    eos = processor.tokenizer.eos_token
    texts = [p + a + eos for p, a in zip(prompts, answers, strict=True)]
    batch = processor(text=texts, images=images, return_tensors="pt")
    # the prompt ends in "\n", a pre-token boundary, so the answer's tokens are the same alone or appended
    n_answer = [len(processor.tokenizer(a + eos)["input_ids"]) for a in answers]
    labels = torch.full_like(batch["input_ids"], -100)  # (B, S)
    for i, n in enumerate(n_answer):
        labels[i, -n:] = batch["input_ids"][i, -n:]
    batch["labels"] = labels
    return batch
