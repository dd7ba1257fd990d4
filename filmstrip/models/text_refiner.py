"""A few trainable transformer layers over the frozen text encoder's token states.

Why: a prompt with several objects ("a red circle moves up as a blue square moves left")
asks each object to take *its own* clause's motion. The DiT reads the prompt through
cross-attention, one content-based lookup per block: a red video token finds the "red" and
"circle" tokens easily, but the motion it needs sits a few words later. The frozen encoder's
states tie words to their clause only loosely (measured on the `shapes` captions: a linear
probe on the noun token's state names its own object's direction 60% of the time and the
other object's 29%), so the lookup returns a blend of both clauses' motions. A text-side
self-attention with positions (1D RoPE over the token index) lets every word gather its
clause before the DiT reads it, so one cross-attention lookup returns the bound attributes.

Each layer is pre-norm attention + MLP with residuals; both branch outputs start at zero, so
a fresh refiner is the identity and adding it to a trained DiT changes nothing until
training opens it.
"""

from __future__ import annotations

import torch
from torch import nn

from filmstrip.models.attention import SelfAttention
from filmstrip.models.rope import rope_angles, rotations


class RefinerLayer(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))

    def forward(self, x_bld: torch.Tensor, rot: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        x_bld = x_bld + self.attn(self.norm1(x_bld), rot, key_mask)
        return x_bld + self.mlp(self.norm2(x_bld))


class TextRefiner(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int):
        super().__init__()
        self.head_dim = dim // heads
        self.layers = nn.ModuleList(RefinerLayer(dim, heads) for _ in range(depth))
        self.zero_branches()

    def zero_branches(self) -> None:
        """Zero both branch outputs of every layer: the refiner becomes the identity."""
        for layer in self.layers:
            for out in (layer.attn.out, layer.mlp[-1]):
                nn.init.zeros_(out.weight)
                nn.init.zeros_(out.bias)

    def forward(self, context_bld: torch.Tensor, mask_bl: torch.Tensor) -> torch.Tensor:
        """context: (B, L, D) token states; mask: (B, L), True on real tokens. Padded
        positions are never attended to; their own outputs are left for the caller's mask."""
        length = context_bld.shape[1]
        # 1D positions through the 3D RoPE: the same index on all three axes rotates every
        # channel pair, so the head sees the token offset at all of RoPE's frequencies.
        index = torch.arange(length, device=context_bld.device, dtype=torch.float32)
        rot = rotations(
            rope_angles(index[:, None].expand(length, 3), self.head_dim), context_bld.dtype == torch.float64
        )
        key_mask = mask_bl[:, None, None, :]  # (B, 1, 1, L): every head and query
        x = context_bld
        for layer in self.layers:
            x = layer(x, rot, key_mask)
        return x
