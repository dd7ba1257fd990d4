"""Finite scalar quantisation (Mentzer et al., 2023): a discrete bottleneck with no codebook.

Each latent channel i is squashed into (-1, 1) and rounded to one of `levels[i]` evenly
spaced values; the implicit codebook is the product of the per-channel grids, of size
prod(levels). There is nothing to learn and nothing to collapse, unlike a VQ codebook, and
the gradient passes the rounding unchanged (straight-through).

Here channel i's values are exactly {-1, -1 + 2/(L-1), ..., 1}, the same recipe for odd and
even L.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from filmstrip.errors import InputError


class FSQ(nn.Module):
    """Quantise (B, D, ...) with D = len(levels) channels; returns values on the grid."""

    def __init__(self, levels: tuple[int, ...]):
        super().__init__()
        if not levels or min(levels) < 2:
            raise InputError(f"FSQ needs at least one channel and >= 2 levels each, got {levels}")
        self.levels = tuple(int(n) for n in levels)
        levels_t = torch.tensor(self.levels, dtype=torch.float32)
        # Mixed-radix place values: code = sum_i digit_i * prod_{j < i} L_j.
        basis = torch.cumprod(torch.tensor((1, *self.levels[:-1]), dtype=torch.float64), 0)
        self.register_buffer("_levels", levels_t, persistent=False)
        self.register_buffer("_basis", basis.to(torch.int64), persistent=False)

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels)

    def _per_channel(self, t: torch.Tensor, ndim: int) -> torch.Tensor:
        return t.view(1, -1, *([1] * (ndim - 2)))

    def digits(self, z: torch.Tensor) -> torch.Tensor:
        """Float digits in [0, L-1] before rounding, differentiable."""
        top = self._per_channel(self._levels, z.ndim) - 1
        return (torch.tanh(z.float()) + 1) / 2 * top

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        digits = self.digits(z)
        rounded = digits + (digits.round() - digits).detach()  # straight-through estimator
        top = self._per_channel(self._levels, z.ndim) - 1
        return (rounded / top * 2 - 1).to(z.dtype)

    def codes(self, z: torch.Tensor) -> torch.Tensor:
        """Integer code per position, (B, ...) with values in [0, codebook_size)."""
        digits = self.digits(z).round().long()
        return (digits * self._per_channel(self._basis, z.ndim)).sum(dim=1)

    def from_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Inverse of `codes`: (B, ...) integers -> (B, D, ...) grid values."""
        levels = self._levels.long()
        digits = (codes.unsqueeze(1) // self._per_channel(self._basis, codes.ndim + 1)) % self._per_channel(
            levels, codes.ndim + 1
        )
        top = self._per_channel(self._levels, codes.ndim + 1) - 1
        return digits.float() / top * 2 - 1


def codebook_usage(codes: torch.Tensor, codebook_size: int) -> dict[str, float]:
    """How much of the codebook a set of codes uses: the fraction of codes that occur, and the
    perplexity (exp of the code entropy; equals codebook_size when usage is uniform)."""
    counts = torch.bincount(codes.flatten(), minlength=codebook_size).double()
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return {
        "used_fraction": float((counts > 0).double().mean()),
        "perplexity": float(entropy.exp()),
        "codebook_size": float(codebook_size),
    }
