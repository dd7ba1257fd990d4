"""Attention for video tokens: self-attention with 3D RoPE (full or factorised in space and
time) and cross-attention to text tokens with a padding mask. Both go through
`F.scaled_dot_product_attention`, which picks a fused kernel where one exists."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from filmstrip.errors import InputError
from filmstrip.models.rope import apply_rope


class SelfAttention(nn.Module):
    """Multi-head self-attention over (B, N, D) tokens, RoPE on queries and keys. QK-norm
    (RMSNorm per head) keeps attention logits bounded under bf16 and high learning rates."""

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
        self, x_bnd: torch.Tensor, angles: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """angles: (N, head_dim / 2) for the token positions; mask: optional boolean
        (N, N) or broadcastable, True where attention is allowed."""
        q, k, v = rearrange(self.qkv(x_bnd), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        # Norms and rotations in float32 (as the style asks under autocast), back to q's dtype.
        q = apply_rope(self.q_norm(q.float()), angles).to(v.dtype)
        k = apply_rope(self.k_norm(k.float()), angles).to(v.dtype)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(rearrange(y, "b h n d -> b n (h d)"))


class CrossAttention(nn.Module):
    """Video tokens (queries) attend to text tokens (keys/values); padded text positions are
    masked out. No RoPE: the text encoder already encoded word order."""

    def __init__(self, dim: int, context_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim, 2 * dim)
        self.q_norm = nn.RMSNorm(dim // heads, eps=1e-6)
        self.k_norm = nn.RMSNorm(dim // heads, eps=1e-6)
        self.out = nn.Linear(dim, dim)

    def forward(
        self, x_bnd: torch.Tensor, context_bld: torch.Tensor, context_mask_bl: torch.Tensor
    ) -> torch.Tensor:
        q = rearrange(self.q(x_bnd), "b n (h d) -> b h n d", h=self.heads)
        k, v = rearrange(self.kv(context_bld), "b l (two h d) -> two b h l d", two=2, h=self.heads)
        q, k = self.q_norm(q.float()).to(v.dtype), self.k_norm(k.float()).to(v.dtype)
        mask = context_mask_bl[:, None, None, :]  # (B, 1, 1, L): same for every head and query
        y = F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype), attn_mask=mask)
        return self.out(rearrange(y, "b h n d -> b n (h d)"))
