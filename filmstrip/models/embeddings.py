"""Turning latents into tokens and back, and noise levels into vectors."""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

from filmstrip.errors import InputError


def patchify(z_bcthw: torch.Tensor, patch: tuple[int, int, int]) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """(B, C, T, H, W) -> tokens (B, N, C*pt*ph*pw) in "t h w" order, and the token grid."""
    pt, ph, pw = patch
    _, _, t, h, w = z_bcthw.shape
    if t % pt or h % ph or w % pw:
        raise InputError(
            f"latents of {t}x{h}x{w} (frames x height x width) do not divide into {pt}x{ph}x{pw} patches"
        )
    tokens = rearrange(z_bcthw, "b c (t pt) (h ph) (w pw) -> b (t h w) (c pt ph pw)", pt=pt, ph=ph, pw=pw)
    return tokens, (t // pt, h // ph, w // pw)


def unpatchify(
    tokens_bnd: torch.Tensor, grid: tuple[int, int, int], patch: tuple[int, int, int]
) -> torch.Tensor:
    """Inverse of `patchify`: (B, N, C*pt*ph*pw) -> (B, C, T, H, W)."""
    (t, h, w), (pt, ph, pw) = grid, patch
    return rearrange(
        tokens_bnd, "b (t h w) (c pt ph pw) -> b c (t pt) (h ph) (w pw)", t=t, h=h, w=w, pt=pt, ph=ph, pw=pw
    )


def sinusoidal(
    t: torch.Tensor, dim: int, max_period: float = 10_000.0, scale: float = 1000.0
) -> torch.Tensor:
    """(...,) values -> (..., dim) sin/cos features, in float32. Noise levels in [0, 1] are
    scaled by 1000 so neighbouring steps of a sampler get visibly different features."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[..., None] * scale * freqs
    return torch.cat([args.cos(), args.sin()], dim=-1)


class TimestepEmbedding(nn.Module):
    """Noise level per frame (B, T) -> conditioning vector per frame (B, T, D)."""

    def __init__(self, dim: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t_bt: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal(t_bt, self.freq_dim).to(self.mlp[0].weight.dtype))


class PlaceEmbedding(nn.Module):
    """Where each token sits in the frame, as fractions of its height and width -> (H*W, D),
    added to the tokens.

    RoPE is relative in space too: at high noise every token looks alike, and a token cannot
    tell the top left of the frame from the bottom right, so "a circle in the top left" has
    nothing to attach to. Fractions of the frame (not token indices) keep the embedding
    meaningful at any H and W. Like FrameEmbedding, the last layer starts at zero.
    """

    def __init__(self, dim: int, freq_dim: int = 64):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(2 * freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, height: int, width: int, device=None) -> torch.Tensor:
        # Token centres in (0, 1); periods from 1/10 of the frame to 10 frames.
        ys = (torch.arange(height, device=device) + 0.5) / height
        xs = (torch.arange(width, device=device) + 0.5) / width
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        fy = sinusoidal(yy.reshape(-1), self.freq_dim, max_period=100.0, scale=10.0)
        fx = sinusoidal(xx.reshape(-1), self.freq_dim, max_period=100.0, scale=10.0)
        return self.mlp(torch.cat([fy, fx], dim=-1).to(self.mlp[0].weight.dtype))


class FrameEmbedding(nn.Module):
    """Absolute index of each latent frame (T,) -> (T, D), added to the per-frame condition.

    RoPE tells attention only how far apart two frames are, so a token cannot tell which
    frame it is in, and "the object is k frames further along its path" has to be pieced
    together from relative offsets layer by layer. Under AdaLN every token of frame k gets
    this vector directly. The last layer starts at zero, so adding it to a trained model
    changes nothing until fine-tuning opens it.
    """

    def __init__(self, dim: int, freq_dim: int = 64):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, index_t: torch.Tensor) -> torch.Tensor:
        # Period 1 to 100 frames: neighbouring frames differ, and streamed chunks (offset
        # indices) still land on distinct, smoothly varying features.
        features = sinusoidal(index_t, self.freq_dim, max_period=100.0, scale=1.0)
        return self.mlp(features.to(self.mlp[0].weight.dtype))


class ConditionEmbedding(nn.Module):
    """A per-frame condition vector (B, T, in_dim) -> (B, T, D), added to the AdaLN input.
    Its last layer starts at zero (set by the DiT), so a new condition starts switched off."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.in_dim = in_dim
        self.mlp = nn.Sequential(nn.Linear(in_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, v_btk: torch.Tensor) -> torch.Tensor:
        return self.mlp(v_btk.to(self.mlp[0].weight.dtype))


def token_grid(latent_thw: tuple[int, int, int], patch: tuple[int, int, int]) -> tuple[int, int, int]:
    """The (T', H', W') grid of tokens that latents of (T, H, W) make at this patch size: the
    one place that says how latents become tokens (the timestep shift counts them)."""
    return tuple(n // p for n, p in zip(latent_thw, patch, strict=True))
