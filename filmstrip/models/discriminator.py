"""A 3D patch discriminator: says, for each space-time patch, whether it looks real.

Used only while training an autoencoder, and only after a warm-up: an adversarial term on
top of L1 + SSIM sharpens edges and textures that pixel losses blur. Patch-level decisions
(rather than one per clip) keep it local and cheap. Works on single images too (T = 1).
"""

from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator3d(nn.Module):
    def __init__(self, in_channels: int = 3, width: int = 32, layers: int = 3):
        super().__init__()
        blocks: list[nn.Module] = [
            nn.Conv3d(in_channels, width, (3, 4, 4), stride=(1, 2, 2), padding=1),
            nn.LeakyReLU(0.2),
        ]
        ch = width
        for i in range(1, layers):
            nxt = width * 2**i
            blocks += [
                nn.Conv3d(ch, nxt, (3, 4, 4), stride=(2 if i == 1 else 1, 2, 2), padding=1),
                nn.GroupNorm(8, nxt),
                nn.LeakyReLU(0.2),
            ]
            ch = nxt
        blocks.append(nn.Conv3d(ch, 1, 3, padding=1))
        self.net = nn.Sequential(*blocks)

    def forward(self, x_bcthw: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> patch logits (B, 1, T', H', W')."""
        return self.net(x_bcthw)


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (torch.relu(1 - logits_real).mean() + torch.relu(1 + logits_fake).mean())
