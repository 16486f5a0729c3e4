"""Row maths without a model: every mask form the kernels hand over, GQA grouping, position bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers.integrations.sdpa_attention import repeat_kv

from attnviz.capture.attention import query_probs
from attnviz.capture.recorder import MemorySink, RowRecorder, place_row

B, H, H_KV, D = 2, 6, 2, 8


def _qk(q_len: int, kv_len: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(B, H, q_len, D, generator=gen), torch.randn(B, H_KV, kv_len, D, generator=gen)


def _reference(query, key, allowed):  # allowed: (B or 1, 1, Q, K) bool
    scores = query @ repeat_kv(key, H // H_KV).transpose(-1, -2) * D**-0.5  # (B, H, Q, K)
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)


def _causal(q_len, kv_len, offset):  # query i at absolute position offset + i, keys 0..kv_len-1
    return torch.arange(kv_len)[None, :] <= (torch.arange(q_len) + offset)[:, None]


def test_bool_and_additive_masks_agree_with_reference():
    query, key = _qk(5, 9)
    allowed = _causal(5, 9, 4)[None, None].expand(B, 1, 5, 9).clone()
    allowed[0, :, :, :2] = False  # batch element 0 is left-padded by two
    rows = range(5)
    expected = _reference(query, key, allowed)
    additive = torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)
    for mask in (allowed, additive):
        got = query_probs(query, key, mask, D**-0.5, rows)
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_no_mask_follows_each_kernels_causal_alignment():
    query, key = _qk(4, 7)
    rows = range(4)
    # SDPA: is_causal is upper-left aligned (it only meets K > Q on a static cache's empty prefill slots)
    upper_left = query_probs(query, key, None, D**-0.5, rows)
    torch.testing.assert_close(upper_left, _reference(query, key, _causal(4, 7, 0)[None, None]), atol=1e-6, rtol=0)
    # FlashAttention: bottom-right, the last query sees every key
    bottom_right = query_probs(query, key, None, D**-0.5, rows, bottom_right=True)
    torch.testing.assert_close(bottom_right, _reference(query, key, _causal(4, 7, 3)[None, None]), atol=1e-6, rtol=0)


def test_single_query_without_mask_sees_every_key():
    query, key = _qk(1, 7)
    got = query_probs(query, key, None, D**-0.5, range(1))
    torch.testing.assert_close(got, _reference(query, key, torch.ones(1, 1, 1, 7, dtype=torch.bool)), atol=1e-6, rtol=0)


def test_2d_padding_mask_with_sliding_window_equals_4d_mask():
    query, key = _qk(3, 10)
    padding = torch.ones(B, 10, dtype=torch.long)
    padding[1, :3] = 0
    allowed = _causal(3, 10, 7)[None, None] & padding.bool()[:, None, None, :]
    allowed &= torch.arange(10)[None, :] > (torch.arange(3) + 7 - 4)[:, None]  # window of 4
    got = query_probs(query, key, padding, D**-0.5, range(3), bottom_right=True, sliding_window=4)
    torch.testing.assert_close(got, _reference(query, key, allowed), atol=1e-6, rtol=0)


def test_gqa_groups_query_heads_under_their_kv_head():
    query, key = _qk(1, 5)
    key[:, 1] = 0.0  # kv head 1 gives flat scores: only query heads 3..5 (its group) become uniform
    got = query_probs(query, key, None, D**-0.5, range(1))[:, :, 0]  # (B, H, K)
    torch.testing.assert_close(got[:, 3:], torch.full((B, 3, 5), 0.2), atol=1e-6, rtol=0)
    assert not torch.allclose(got[:, :3], torch.full((B, 3, 5), 0.2))


def test_place_row_puts_a_cropped_window_at_absolute_positions():
    values = np.array([[0.5, 0.25, 0.25]], dtype=np.float32)
    np.testing.assert_array_equal(place_row(values, 4, 6), [[0, 0, 0, 0, 0.5, 0.25, 0.25]])
    assert place_row(values, 0, 2) is values  # exact fit: no copy


@pytest.mark.parametrize(
    "kv_lens,expected",
    [
        ([5, 6, 7], [(4, 0, 5), (5, 0, 6), (6, 0, 7)]),  # dynamic cache
        ([9, 9, 9], [(4, 0, 5), (5, 0, 6), (6, 0, 7)]),  # static cache of 9 slots
        ([5, 4, 4], [(4, 0, 5), (5, 2, 4), (6, 3, 4)]),  # sliding window of 4: cropped cache
    ],
)
def test_plan_tracks_absolute_positions(kv_lens, expected):
    recorder = RowRecorder([0])
    q_lens = [5, 1, 1]  # prefill of 5, then two decode steps
    plans = [recorder.plan(0, q, k) for q, k in zip(q_lens, kv_lens, strict=True)]
    assert [(p.positions[-1], p.kv_start, p.kv_keep) for p in plans] == expected


def test_replay_plan_captures_every_answer_position_once():
    recorder = RowRecorder([0], answer=(5, 3))
    plan = recorder.plan(0, q_len=8, kv_len=8)
    assert list(plan.positions) == [4, 5, 6]  # the queries that score answer tokens 0, 1, 2


def test_recorder_streams_rows_in_step_order_and_flushes_per_step():
    sink = MemorySink("float16")
    recorder = RowRecorder([0, 1], sink)
    for q_len, kv_len in ((3, 3), (1, 4)):
        for layer in (0, 1):
            plan = recorder.plan(layer, q_len, kv_len)
            probs = torch.full((1, 2, 1, kv_len), 1.0 / kv_len)
            recorder.add(layer, plan.positions, plan.kv_start, probs)
        assert recorder._pending == []  # the last layer of a step flushed it
    assert [r.shape for r in sink.rows[1]] == [(1, 3), (1, 4)] and sink.rows[0][1].dtype == np.float16
