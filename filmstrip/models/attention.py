"""Attention for video tokens: self-attention with 3D RoPE (full or factorised in space and
time) and cross-attention to text tokens with a padding mask.

`attend` computes softmax(q k^T / sqrt(d)) v by whichever of two equal computations is
faster for the shape, device and precision: PyTorch's `scaled_dot_product_attention` (a
fused kernel where one exists) or the product written out (matmul, softmax, matmul). The
rule below is what `benchmarks/bench_dit.py` measured (its "attention" table)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from filmstrip.errors import InputError
from filmstrip.models.kv_cache import KVCache
from filmstrip.models.rope import apply_rope

# Longest key sequence for which the written-out product beats the fused CPU kernel. On a
# 2-core AVX2 CPU in float32 the fused kernel won at every length, training and inference
# (bench_dit.py, RESULTS.md session 14: 0.83x at 80 keys training, 0.60x inference); under
# bf16 autocast on an AMX CPU the written-out product trained 1.29-1.38x faster at 80-160
# keys (the measurement in issue 23). GPUs: the fused (flash) kernels win everywhere.
WRITTEN_OUT_MAX_KEYS_BF16_TRAINING = 160


def written_out_is_faster(q: torch.Tensor, k: torch.Tensor) -> bool:
    if q.device.type != "cpu" or not torch.is_grad_enabled():
        return False
    bf16 = q.dtype == torch.bfloat16 or torch.is_autocast_enabled("cpu")
    return bf16 and k.shape[-2] <= WRITTEN_OUT_MAX_KEYS_BF16_TRAINING


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """Norms and rotations run in float32 under autocast (as the style asks); float64 stays."""
    return x if x.dtype == torch.float64 else x.float()


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, heads, N, d) queries, (B, heads, L, d) keys and values, optional boolean mask
    broadcastable to (B, heads, N, L), True where attention is allowed -> (B, heads, N, d),
    by the faster path here. A query with no allowed key gets zeros."""
    if written_out_is_faster(q, k):
        return written_out_attention(q, k, v, mask)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def written_out_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """`attend` as matmul, softmax, matmul; zeros for a query with no allowed key (as the
    fused kernel gives)."""
    return attention_weights(q, k, mask).to(v.dtype) @ v


def attention_weights(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)), (B, heads, N, L); all zeros for a query with no allowed key."""
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # (B, heads, N, L)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    if mask is not None:  # rows with every key masked: softmax of all -inf is NaN
        weights = weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    return weights


# Sees, and may replace, one layer's attention weights (B, heads, N, L): how editing shares a
# source clip's attention with its edit (pipelines/attention_share.py).
WeightsHook = Callable[[torch.Tensor], torch.Tensor]


def attend_with_hook(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, hook: WeightsHook | None
) -> torch.Tensor:
    """`attend`, or with a hook the written-out product with the hook's weights."""
    if hook is None:
        return attend(q, k, v, mask)
    return hook(attention_weights(q, k, mask)).to(v.dtype) @ v


class SelfAttention(nn.Module):
    """Multi-head self-attention over (B, N, D) tokens, RoPE on queries and keys. QK-norm
    (RMSNorm per head) keeps attention logits bounded under bf16 and high learning rates."""

    weights_hook: WeightsHook | None = None

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise InputError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = nn.RMSNorm(dim // heads, eps=1e-6)
        self.k_norm = nn.RMSNorm(dim // heads, eps=1e-6)
        self.out = nn.Linear(dim, dim)

    def forward(
        self,
        x_bnd: torch.Tensor,
        rot: torch.Tensor,
        mask: torch.Tensor | None = None,
        cache: tuple[KVCache, int] | None = None,
    ) -> torch.Tensor:
        """rot: (N, head_dim / 2, 2) RoPE `rotations` of the token positions; mask: optional
        boolean (N, N + past) or broadcastable, True where attention is allowed; cache: a
        `KVCache` and this layer's block index, whose past keys and values come first."""
        q, k, v = (
            self.qkv(x_bnd).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)
        )  # 3 x (B, heads, N, d)
        # Norms and rotations in float32 (as the style asks under autocast), back to v's dtype.
        q = apply_rope(self.q_norm(at_least_float32(q)), rot).to(v.dtype)
        k_normed = self.k_norm(at_least_float32(k))
        k = apply_rope(k_normed, rot).to(v.dtype)
        if cache is not None:
            k, v = cache[0].extend(cache[1], k_normed, k, v)  # (B, heads, past + N, d)
        y = attend_with_hook(q, k, v, mask, self.weights_hook)  # (B, heads, N, d)
        return self.out(y.transpose(1, 2).flatten(2))


class CrossAttention(nn.Module):
    """Video tokens (queries) attend to text tokens (keys/values); padded text positions are
    masked out. No RoPE: the text encoder already encoded word order."""

    weights_hook: WeightsHook | None = None

    def __init__(self, dim: int, context_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim, 2 * dim)
        self.q_norm = nn.RMSNorm(dim // heads, eps=1e-6)
        self.k_norm = nn.RMSNorm(dim // heads, eps=1e-6)
        self.out = nn.Linear(dim, dim)

    def keys_values(self, context_bld: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The text's normed keys and its values, 2 x (B, heads, L, d): fixed for a prompt."""
        k, v = self.kv(context_bld).unflatten(-1, (2, self.heads, -1)).permute(2, 0, 3, 1, 4)
        return self.k_norm(at_least_float32(k)).to(v.dtype), v

    def forward(
        self,
        x_bnd: torch.Tensor,
        context_bld: torch.Tensor,
        context_mask_bl: torch.Tensor,
        keys_values: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """keys_values: `keys_values(context_bld)` computed earlier (a stream's cache)."""
        q = self.q(x_bnd).unflatten(-1, (self.heads, -1)).transpose(1, 2)  # (B, heads, N, d)
        k, v = keys_values if keys_values is not None else self.keys_values(context_bld)
        q = self.q_norm(at_least_float32(q)).to(v.dtype)
        mask = context_mask_bl[:, None, None, :]  # (B, 1, 1, L): same for every head and query
        y = attend_with_hook(q, k, v, mask, self.weights_hook)
        return self.out(y.transpose(1, 2).flatten(2))
