"""Batched generation captured exactly per sample: on the tiny twins of Qwen2-VL and LLaVA-1.5, a batch of 4 with
mixed prompt lengths and one- and two-image samples gives every sample the tokens (identical, greedy), geometry
(identical) and rows (max |batched - alone| measured 3.7e-9 for Qwen2-VL and 7.5e-9 for LLaVA; asserted <= 1e-5) of
generating it alone; a sample that ends early stops receiving rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from attnviz.capture.batch import BatchSink, answer_tokens, cat_padded, collate
from attnviz.capture.recorder import MemorySink
from attnviz.data import Sample
from attnviz.models.loading import load_model
from attnviz.schema import GenerationConfig
from attnviz.tracing import CaptureRequest, build_trace, build_traces, prepare_sample

TOLERANCE = 1e-5  # what batched matmuls allow; measured ~1e-8 on these twins in fp32
NEW_TOKENS = 10


def _image(seed: int, height: int = 60, width: int = 84) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8))


SAMPLES = [  # prompts of clearly different lengths; one and two images
    (Sample("short", "Where?", []), [_image(0)]),
    (Sample("long", "Where is the red marker on this map? Answer with (x,y) and explain it in detail, please.", []),
     [_image(1), _image(2, 90, 50)]),
    (Sample("two", "Which one is larger, the first or the second picture?", []), [_image(3), _image(4)]),
    (Sample("square", "Describe.", []), [_image(5, 50, 50)]),
]


def _alone_and_batched(loaded, tmp_path, request, gen_cfg):
    alone = [build_trace(loaded, s, ims, request, gen_cfg, "{Question}", tmp_path / f"alone{i}")[0]
             for i, (s, ims) in enumerate(SAMPLES)]
    prepared = [prepare_sample(loaded, s, ims, "{Question}") for s, ims in SAMPLES]
    assert len({p.prompt_len for p in prepared}) == len(SAMPLES)  # every prompt is padded but the longest
    batched = build_traces(loaded, prepared, request, gen_cfg, [tmp_path / f"batch{i}" for i in range(4)],
                           progress=False)
    return alone, batched


def _worst_row_error(alone, batched, request) -> float:
    worst = 0.0
    for a, b in zip(alone, batched, strict=True):
        for step in range(a.n_steps):
            for layer in request.layers:
                worst = max(worst, float(np.abs(a.row(layer, step) - b.row(layer, step)).max()))
            for layer in request.head_layers:
                worst = max(worst, float(np.abs(a.head_rows(layer, step) - b.head_rows(layer, step)).max()))
    return worst


@pytest.mark.parametrize("family", ["qwen2_vl", "llava"])
def test_batch_of_four_equals_each_sample_alone(twin_dir, tmp_path, family):
    loaded = load_model(str(twin_dir(family)), device="cpu", dtype="float32")
    request = CaptureRequest(layers=[0, 1], head_layers=[1], dtype="float32")
    alone, batched = _alone_and_batched(loaded, tmp_path, request, GenerationConfig(max_new_tokens=NEW_TOKENS))
    for a, b in zip(alone, batched, strict=True):
        assert b.token_ids == a.token_ids and b.prompt_len == a.prompt_len  # greedy tokens identical
        assert b.images == a.images and b.token_kinds == a.token_kinds and b.token_texts == a.token_texts
        assert b.layers == a.layers and b.head_layers == a.head_layers
    assert _worst_row_error(alone, batched, request) <= TOLERANCE


def test_a_sample_that_ends_early_stops_receiving_rows(twin_dir, tmp_path):
    loaded = load_model(str(twin_dir("qwen2_vl")), device="cpu", dtype="float32")
    request = CaptureRequest(layers=[0, 1], dtype="float32")
    gen_cfg = GenerationConfig(max_new_tokens=NEW_TOKENS)
    first = build_trace(loaded, *SAMPLES[1], request, gen_cfg, "{Question}", tmp_path / "probe")[0]
    stop = first.token_ids[first.prompt_len + 3]  # what "long" writes 4th becomes an end token
    loaded.model.generation_config.eos_token_id = [loaded.model.generation_config.eos_token_id, stop]
    alone, batched = _alone_and_batched(loaded, tmp_path, request, gen_cfg)
    lengths = [t.n_steps for t in batched]
    assert lengths[1] <= 4 and max(lengths) == NEW_TOKENS  # it ended early, another ran to the limit
    for a, b in zip(alone, batched, strict=True):
        assert b.token_ids == a.token_ids and len(b.rows[0]) == b.n_steps == a.n_steps
    assert _worst_row_error(alone, batched, request) <= TOLERANCE
    stored = (tmp_path / "batch1" / "layer_000.rows").stat().st_size  # float32 rows of the sample that ended
    assert stored == 4 * sum(batched[1].prompt_len + t for t in range(lengths[1]))
    assert stop in batched[1].token_ids[batched[1].prompt_len:]


def test_collate_left_pads_per_token_inputs_and_concatenates_the_rest():
    a = {"input_ids": torch.tensor([[5, 6, 7]]), "attention_mask": torch.ones(1, 3, dtype=torch.long),
         "mm_token_type_ids": torch.tensor([[0, 1, 0]]), "pixel_values": torch.ones(4, 2)}
    b = {"input_ids": torch.tensor([[8]]), "attention_mask": torch.ones(1, 1, dtype=torch.long),
         "mm_token_type_ids": torch.tensor([[0]])}  # no image: no pixel values
    batch, pads = collate([a, b], pad_id=0)
    assert pads == [0, 2]
    assert batch["input_ids"].tolist() == [[5, 6, 7], [0, 0, 8]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    assert batch["mm_token_type_ids"].tolist() == [[0, 1, 0], [0, 0, 0]]
    assert batch["pixel_values"].shape == (4, 2)


def test_cat_padded_pads_tile_counts_with_zeros():
    x, y = torch.ones(1, 3, 2), torch.full((2, 1, 2), 2.0)  # (images, tiles, ...) of two samples
    out = cat_padded([x, y])
    assert out.shape == (3, 3, 2) and out[1:, 1:].abs().sum() == 0 and out[1, 0, 0] == 2


def test_batch_sink_hands_each_sample_its_tail_until_its_end():
    sinks = [MemorySink(), MemorySink()]
    sink = BatchSink(sinks, pads=[0, 2])
    sink.last_step[1] = 0  # sample 1 wrote its end token at step 0
    for step in range(2):
        sink.write(0, step, np.arange(5 + step, dtype=np.float32)[None].repeat(2, 0), None)  # (B, P + step)
    assert [len(s.rows[0]) for s in sinks] == [2, 1]
    assert sinks[1].rows[0][0].tolist() == [[2, 3, 4]]  # the padded keys (0, 1) are not the sample's


def test_answer_tokens_end_at_the_first_end_token():
    assert answer_tokens([4, 9, 2, 0, 0], [2]) == [4, 9, 2]
    assert answer_tokens([4, 9], [2]) == [4, 9]
