"""An attention function for transformers' registry: the wrapped kernel's output, plus exact last-row weights.

The output comes from the wrapped implementation (SDPA by default), so tokens and logits are the ones the model
produces without attnviz. For layers the active recorder wants, the last query's probabilities are recomputed in
fp32 as ``softmax(q_last · Kᵀ · scaling + mask)`` — one row, so the cost is O(kv_len) per head.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from attnviz.capture.recorder import active_recorder

CAPTURE_PREFIX = "attnviz_"


def last_row_probs(
    query: torch.Tensor,  # (B, H, Q, D)
    key: torch.Tensor,  # (B, H_kv, K, D)
    attention_mask: torch.Tensor | None,  # (B, 1, Q, K) bool (True = attend) or additive float; None = causal
    scaling: float,
) -> torch.Tensor:  # (B, H, K) fp32
    batch, n_heads, _, head_dim = query.shape
    n_kv = key.shape[1]
    # GQA: group query heads under their shared kv head instead of repeating the keys.
    q_last = query[:, :, -1, :].float().reshape(batch, n_kv, n_heads // n_kv, head_dim)  # (B, H_kv, G, D)
    scores = torch.einsum("bkgd,bksd->bkgs", q_last, key.float()) * scaling  # (B, H_kv, G, K)
    scores = scores.reshape(batch, n_heads, -1)  # (B, H, K)
    if attention_mask is not None:
        mask = attention_mask[:, :, -1, : key.shape[2]]  # (B, 1, K)
        is_bool = mask.dtype == torch.bool
        scores = scores.masked_fill(~mask, float("-inf")) if is_bool else scores + mask.float()
    # A None mask means SDPA's causal fast path (Q == 1 or Q == K): the last query sees every key.
    return torch.softmax(scores, dim=-1)


def _make_capture(inner_name: str):
    def attnviz_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
        output = ALL_ATTENTION_FUNCTIONS[inner_name](
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
        recorder = active_recorder()
        layer_idx = getattr(module, "layer_idx", None)
        if recorder is not None and getattr(module, "is_causal", False) and recorder.wants(layer_idx):
            scale = scaling if scaling is not None else query.shape[-1] ** -0.5
            with torch.no_grad():
                probs = last_row_probs(query, key, attention_mask, scale)  # (B, H, K)
            recorder.add(layer_idx, probs[0].mean(dim=0))
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
