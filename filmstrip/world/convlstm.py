"""The classical baseline (seed Phase 2): a ConvLSTM next-frame predictor.

It reads the same context as the world model (the last N frames and the action taken on
each) and regresses the next frame with a squared error: one deterministic guess, the mean of
what may come. Frames are encoded to 16x16 features, the action is painted onto them as extra
channels, a convolutional LSTM runs over the N steps, and the decoder adds its prediction of
the change to the last frame (most of a game frame does not move).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from filmstrip.checkpoint import build_with_weights, load_model, parse_config, resolve
from filmstrip.device import pick_device
from filmstrip.errors import InputError


@dataclass(frozen=True)
class ConvLSTMConfig:
    num_actions: int = 6
    size: int = 64
    context: int = 4
    hidden: int = 64
    action_channels: int = 16
    game: str = ""

    def __post_init__(self):
        if self.size % 4:
            raise InputError(f"the ConvLSTM needs a frame size divisible by 4, got {self.size}")


class ConvLSTMCell(nn.Module):
    def __init__(self, c_in: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(c_in + hidden, 4 * hidden, 3, padding=1)

    def forward(
        self, x_bchw: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        i, f, o, g = self.gates(torch.cat([x_bchw, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class ConvLSTMPredictor(nn.Module):
    kind = "world-convlstm"

    def __init__(self, cfg: ConvLSTMConfig):
        super().__init__()
        self.cfg = cfg
        hid = cfg.hidden
        self.encode = nn.Sequential(
            nn.Conv2d(3, 32, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(32, hid, 3, stride=2, padding=1),
            nn.SiLU(),
        )
        self.action = nn.Embedding(cfg.num_actions, cfg.action_channels)
        self.cell = ConvLSTMCell(hid + cfg.action_channels, hid)
        self.up1 = nn.Conv2d(hid, 32, 3, padding=1)
        self.up2 = nn.Conv2d(32 + 3, 32, 3, padding=1)  # + the last frame, for sharp unchanged pixels
        self.out = nn.Conv2d(32, 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # starts as copy-the-last-frame
        nn.init.zeros_(self.out.bias)

    def forward(self, context_bnchw: torch.Tensor, actions_bn: torch.Tensor) -> torch.Tensor:
        """Context frames (B, N, 3, H, W) in [-1, 1] and actions (B, N) -> next frame (B, 3, H, W)."""
        b, n, _, hgt, wid = context_bnchw.shape
        feats = self.encode(context_bnchw.flatten(0, 1)).unflatten(0, (b, n))  # (B, N, hid, H/4, W/4)
        acts = self.action(actions_bn).to(feats.dtype)[..., None, None].expand(-1, -1, -1, *feats.shape[-2:])
        h = feats.new_zeros(b, self.cfg.hidden, *feats.shape[-2:])
        c = torch.zeros_like(h)
        for k in range(n):
            h, c = self.cell(torch.cat([feats[:, k], acts[:, k]], dim=1), (h, c))
        last = context_bnchw[:, -1]
        up = F.silu(self.up1(F.interpolate(h, scale_factor=2.0, mode="nearest")))
        up = F.interpolate(up, size=(hgt, wid), mode="nearest")
        up = F.silu(self.up2(torch.cat([up, last.to(up.dtype)], dim=1)))
        return last + self.out(up).to(last.dtype)


def load_convlstm(directory: str | Path, device: torch.device | str = "cpu") -> ConvLSTMPredictor:
    """A trained ConvLSTM baseline from its folder, in eval mode, on `device`."""
    device = pick_device(device)
    path = resolve(directory, "world_pong")
    config, state, _ = load_model(path, ConvLSTMPredictor.kind)
    cfg = parse_config(path, ConvLSTMConfig, config)
    return build_with_weights(path, lambda: ConvLSTMPredictor(cfg), state).to(device).eval()
