"""A small conditional 2D U-Net: the denoiser of the world model (world/model.py).

Why a U-Net and not the DiT: a world model generates one 64x64 frame at a time, many times a
second, on a CPU. At that size convolutions see the whole frame in three levels, cost a
fixed, small amount per pixel, and run at batch 1 without the per-token overheads of
attention; DIAMOND and GameNGen's decoder make the same choice. Context frames enter as
extra input channels (they are pixel-aligned with the output); everything else (noise
level, actions) enters as one conditioning vector per sample that scales and shifts every
group norm (AdaGN, the convolutional form of AdaLN).

The network knows nothing of noise, actions or games: `forward(x_bchw, cond_bd)`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from filmstrip.errors import InputError


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = 3
    out_channels: int = 3
    channels: tuple[int, ...] = (32, 64, 96)  # one entry per resolution level, halving each time
    blocks: int = 2  # residual blocks per level, on the way down and on the way up
    cond_dim: int = 128
    groups: int = 8

    def __post_init__(self):
        if not self.channels or any(c % self.groups for c in self.channels):
            raise InputError(f"every U-Net width must be a multiple of groups={self.groups}: {self.channels}")
        if self.blocks < 1:
            raise InputError(f"U-Net blocks must be >= 1, got {self.blocks}")


class AdaGroupNorm(nn.Module):
    """GroupNorm whose scale and shift come from the conditioning vector, starting at identity."""

    def __init__(self, channels: int, cond_dim: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, affine=False)
        self.to_scale_shift = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.to_scale_shift.weight)
        nn.init.zeros_(self.to_scale_shift.bias)

    def forward(self, x_bchw: torch.Tensor, cond_bd: torch.Tensor) -> torch.Tensor:
        scale, shift = self.to_scale_shift(cond_bd)[:, :, None, None].chunk(2, dim=1)
        return self.norm(x_bchw) * (1 + scale) + shift


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, cond_dim: int, groups: int):
        super().__init__()
        self.norm1 = AdaGroupNorm(c_in, cond_dim, groups)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2 = AdaGroupNorm(c_out, cond_dim, groups)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity (its skip)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x_bchw: torch.Tensor, cond_bd: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x_bchw, cond_bd)))
        h = self.conv2(F.silu(self.norm2(h, cond_bd)))
        return self.skip(x_bchw) + h


class UNet(nn.Module):
    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        ch, d, g = cfg.channels, cfg.cond_dim, cfg.groups
        self.stem = nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        for i, c in enumerate(ch):
            c_prev = ch[max(i - 1, 0)]
            self.down.append(
                nn.ModuleList([ResBlock(c_prev if j == 0 else c, c, d, g) for j in range(cfg.blocks)])
            )
            if i < len(ch) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.middle = ResBlock(ch[-1], ch[-1], d, g)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(ch))):
            c_below = ch[min(i + 1, len(ch) - 1)]
            # The first block of a level takes the upsampled features and the skip from the way down.
            blocks = [ResBlock((c_below if i < len(ch) - 1 else ch[i]) + ch[i], ch[i], d, g)]
            blocks += [ResBlock(ch[i], ch[i], d, g) for _ in range(cfg.blocks - 1)]
            self.up.append(nn.ModuleList(blocks))
            if i > 0:
                self.upsample.append(nn.Conv2d(ch[i], ch[i], 3, padding=1))
        self.out_norm = nn.GroupNorm(g, ch[0])
        self.out = nn.Conv2d(ch[0], cfg.out_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # the untrained network predicts zero
        nn.init.zeros_(self.out.bias)

    @property
    def factor(self) -> int:
        """Height and width must be multiples of this."""
        return 2 ** (len(self.cfg.channels) - 1)

    def forward(self, x_bchw: torch.Tensor, cond_bd: torch.Tensor) -> torch.Tensor:
        """x (B, in_channels, H, W), cond (B, cond_dim) -> (B, out_channels, H, W)."""
        if x_bchw.shape[-1] % self.factor or x_bchw.shape[-2] % self.factor:
            raise InputError(f"U-Net input {tuple(x_bchw.shape[-2:])} must be multiples of {self.factor}")
        h = self.stem(x_bchw)
        skips = []
        for i, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, cond_bd)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.middle(h, cond_bd)
        for i, blocks in enumerate(self.up):
            h = torch.cat([h, skips.pop()], dim=1)
            for block in blocks:
                h = block(h, cond_bd)
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out(F.silu(self.out_norm(h)))
