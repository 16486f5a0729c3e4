"""An attention function for transformers' registry: the wrapped kernel's output, plus exact attention rows.

The output comes from the wrapped implementation (SDPA by default), so tokens and logits are the ones the model
produces without attnviz. For layers the active recorder wants, the rows of the queries it asks for are recomputed
in fp32 as ``softmax(q · Kᵀ · scaling + mask)`` — a few rows, so the cost is O(rows · kv_len) per head.

The mask arrives in the form the wrapped kernel's mask function built it:
- a 4D bool (True = attend) or additive float mask (B, 1, Q, K): used as is;
- ``None`` (SDPA's causal fast path, FlashAttention without padding): causal, aligned the way the kernel aligns it;
- a 2D padding mask (B, K) (FlashAttention with padding): padding, plus causality and the sliding window.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from attnviz.capture.recorder import RowRecorder, active_recorder

CAPTURE_PREFIX = "attnviz_"
QUERY_CHUNK = 64  # query rows scored at once when many are captured (replay): bounds the fp32 scratch memory


def causal_allowed(
    rows: range,  # query indices within this call's Q queries
    q_len: int,
    kv_len: int,
    bottom_right: bool,
    sliding_window: int | None,
    device: torch.device,
) -> torch.Tensor:  # (n, K) bool
    """Which keys each query may see under the kernel's own causal rule (no mask tensor given)."""
    keys = torch.arange(kv_len, device=device)
    # One query sees the whole cache; else SDPA's is_causal is upper-left aligned, FlashAttention's bottom-right.
    shift = kv_len - q_len if bottom_right or q_len == 1 else 0
    last = torch.arange(rows.start + shift, rows.stop + shift, device=device)  # (n,) last key each query sees
    allowed = keys[None, :] <= last[:, None]
    if sliding_window is not None:
        allowed &= keys[None, :] > last[:, None] - sliding_window
    return allowed


def masked_scores(
    scores: torch.Tensor,  # (B, H, n, K) fp32
    attention_mask: torch.Tensor | None,
    rows: range,
    q_len: int,
    bottom_right: bool,
    sliding_window: int | None,
) -> torch.Tensor:  # (B, H, n, K)
    kv_len = scores.shape[-1]
    if attention_mask is not None and attention_mask.dim() == 4:
        mask = attention_mask[:, :, rows.start : rows.stop, :kv_len]  # (B, 1, n, K)
        if mask.dtype == torch.bool:
            return scores.masked_fill(~mask, float("-inf"))
        return scores + mask.float()
    if attention_mask is None and q_len == 1 and (sliding_window is None or kv_len <= sliding_window):
        return scores  # decoding without padding: the one query sees every key
    allowed = causal_allowed(rows, q_len, kv_len, bottom_right, sliding_window, scores.device)[None, None]
    if attention_mask is not None:  # 2D padding mask, left-aligned with the keys (shorter for static caches)
        padding = torch.zeros(attention_mask.shape[0], kv_len, dtype=torch.bool, device=scores.device)
        width = min(kv_len, attention_mask.shape[1])
        padding[:, :width] = attention_mask[:, :width].bool()
        allowed = allowed & padding[:, None, None, :]
    return scores.masked_fill(~allowed, float("-inf"))


def query_probs(
    query: torch.Tensor,  # (B, H, Q, D)
    key: torch.Tensor,  # (B, H_kv, K, D)
    attention_mask: torch.Tensor | None,
    scaling: float,
    rows: range,  # query indices to score (contiguous)
    *,
    bottom_right: bool = False,
    sliding_window: int | None = None,
) -> torch.Tensor:  # (B, H, n, K) fp32
    """Exact fp32 attention probabilities of the chosen query rows."""
    batch, n_heads, q_len, head_dim = query.shape
    n_kv, n = key.shape[1], len(rows)
    # GQA: group query heads under their shared kv head instead of repeating the keys.
    q_rows = query[:, :, rows.start : rows.stop, :].float().reshape(batch, n_kv, n_heads // n_kv * n, head_dim)
    scores = torch.matmul(q_rows, key.float().transpose(-1, -2)) * scaling  # (B, H_kv, G·n, K)
    scores = scores.reshape(batch, n_heads, n, -1)  # (B, H, n, K)
    scores = masked_scores(scores, attention_mask, rows, q_len, bottom_right, sliding_window)
    return torch.softmax(scores, dim=-1)


def record_layer(
    recorder: RowRecorder,
    layer_idx: int,
    query: torch.Tensor,  # (B, H, Q, D)
    key: torch.Tensor,  # (B, H_kv, K, D)
    attention_mask: torch.Tensor | None,
    scaling: float,
    **mask_options,
) -> None:
    plan = recorder.plan(layer_idx, q_len=query.shape[2], kv_len=key.shape[2])
    key = key[:, :, : plan.kv_keep]  # static caches: drop the slots no token has filled yet
    for start in range(plan.positions.start, plan.positions.stop, QUERY_CHUNK):
        chunk = range(start, min(start + QUERY_CHUNK, plan.positions.stop))  # absolute positions
        rows = range(chunk.start - plan.pos0, chunk.stop - plan.pos0)  # the same queries, within this call
        probs = query_probs(query, key, attention_mask, scaling, rows, **mask_options)  # (B, H, n, K)
        recorder.add(layer_idx, chunk, plan.kv_start, probs)


def _make_capture(inner_name: str):
    bottom_right = "flash" in inner_name  # FlashAttention aligns its causal mask bottom-right, SDPA upper-left

    def attnviz_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
        output = ALL_ATTENTION_FUNCTIONS[inner_name](
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
        recorder = active_recorder()
        layer_idx = getattr(module, "layer_idx", None)
        if recorder is not None and getattr(module, "is_causal", False) and recorder.wants(layer_idx):
            scale = scaling if scaling is not None else query.shape[-1] ** -0.5
            with torch.no_grad():
                record_layer(
                    recorder, layer_idx, query, key, attention_mask, scale,
                    bottom_right=bottom_right, sliding_window=kwargs.get("sliding_window"),
                )
        return output

    return attnviz_attention


def register_capture(inner_name: str = "sdpa") -> str:
    """Register (once) and return the registry name of the capture wrapper around ``inner_name``."""
    name = f"{CAPTURE_PREFIX}{inner_name}"
    if name not in ALL_ATTENTION_FUNCTIONS:
        AttentionInterface.register(name, _make_capture(inner_name))
        # Without a mask function of its own the registry would build no padding mask for this name.
        AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[inner_name])
    return name
