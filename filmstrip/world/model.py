"""The world model: action-conditioned next-frame generation, plus reward and episode-end heads.

Given the last `context` frames and the actions taken on seeing each of them, the denoiser
sees the next frame through noise and predicts it clean (rollout.py integrates the flow in
1-4 steps from that prediction):

    input  = [noisy next frame x_t | context frames, oldest first]   (3 + 3N, H, W)
    cond   = emb(t) + emb(context noise level) + sum_k emb_k(action_k)
    output = x_0, the clean next frame                                (3, H, W)

The flow is the DiT's (x_t = (1 - t) x_0 + t noise), parameterised by x_0 rather than by the
velocity v = (x_t - x_0) / t. Most of a game frame does not change from one step to the
next and must come out exact to the pixel: as a clean frame that is a copy of context the
network sees, as a velocity it is a copy of the noise it was given, which a small network in
bf16 reproduces only to a few parts in a thousand over the whole frame (docs/RESULTS.md).

Pixel space, not the 2D VAE's latents: at 64x64 an Atari ball is about one pixel, which the
VAE (8x smaller latents, trained on `shapes`) cannot carry; docs/RESULTS.md has the numbers.
Every action slot has its own embedding, so the model knows which press came last (the one
that leads to the frame it makes) and which came before (paddles in Pong carry momentum).

Context frames are noised during training (GameNGen's noise augmentation) at a level the
model is told: at play time its own slightly wrong frames then look like noisy real ones
instead of a distribution it has never seen, which is what keeps long rollouts from drifting.

The heads read the last context frame and the next frame (real in training, generated at play
time) and the action: a reward class (negative, zero, positive) and an episode-end logit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from filmstrip.checkpoint import build_with_weights, load_model, parse_config, resolve
from filmstrip.config import check_types
from filmstrip.device import pick_device
from filmstrip.errors import InputError
from filmstrip.models.embeddings import TimestepEmbedding
from filmstrip.models.unet import UNet, UNetConfig


@dataclass(frozen=True)
class WorldModelConfig:
    num_actions: int = 6
    size: int = 64
    context: int = 4  # past frames (and actions) the model sees
    unet: UNetConfig = field(default_factory=lambda: UNetConfig(in_channels=15))
    head_width: int = 64
    starts: int = 16  # real recorded start contexts shipped with the weights, for env resets
    game: str = ""
    fps: float = 15.0  # the recording's steps per second: how fast play runs
    action_names: tuple[str, ...] = ()

    def __post_init__(self):
        check_types(self, "model")
        if self.num_actions < 1 or self.context < 1:
            raise InputError("a world model needs at least one action and one context frame")
        if self.unet.in_channels != 3 * (self.context + 1) or self.unet.out_channels != 3:
            raise InputError(
                f"the U-Net must take 3 x (context + 1) = {3 * (self.context + 1)} channels and give 3; "
                f"it takes {self.unet.in_channels} and gives {self.unet.out_channels}"
            )
        if self.action_names and len(self.action_names) != self.num_actions:
            raise InputError(f"{len(self.action_names)} action names for {self.num_actions} actions")


class RewardEndHead(nn.Module):
    """(last frame, next frame, action) -> reward-class logits (B, 3) and end logit (B,)."""

    def __init__(self, num_actions: int, size: int, width: int):
        super().__init__()
        layers, c = [], 6
        for _ in range(4):  # 64 -> 4 pixels: the score digits and the ball's exit are both seen
            layers += [nn.Conv2d(c, width, 3, stride=2, padding=1), nn.SiLU()]
            c = width
        self.features = nn.Sequential(*layers)
        self.action = nn.Embedding(num_actions, width)
        self.mlp = nn.Sequential(nn.Linear(width * (size // 16) ** 2 + width, 2 * width), nn.SiLU())
        self.out = nn.Linear(2 * width, 4)

    def forward(
        self, last_bchw: torch.Tensor, next_bchw: torch.Tensor, action_b: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(torch.cat([last_bchw, next_bchw], dim=1)).flatten(1)
        h = self.mlp(torch.cat([h, self.action(action_b).to(h.dtype)], dim=1))
        out = self.out(h).float()
        return out[:, :3], out[:, 3]


class WorldModel(nn.Module):
    kind = "world"

    def __init__(self, cfg: WorldModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.unet.cond_dim
        self.noise_embed = TimestepEmbedding(d)
        self.context_noise_embed = TimestepEmbedding(d)
        self.action_embed = nn.Embedding(cfg.context * cfg.num_actions, d)
        self.denoiser = UNet(cfg.unet)
        self.heads = RewardEndHead(cfg.num_actions, cfg.size, cfg.head_width)
        # Real start contexts (frames uint8 (S, N, H, W, 3), actions (S, N)): the env resets from them.
        self.register_buffer(
            "start_frames", torch.zeros(cfg.starts, cfg.context, cfg.size, cfg.size, 3, dtype=torch.uint8)
        )
        self.register_buffer("start_actions", torch.zeros(cfg.starts, cfg.context, dtype=torch.long))

    def check(self, context_bnchw: torch.Tensor, actions_bn: torch.Tensor) -> None:
        cfg = self.cfg
        b, n, c, h, w = context_bnchw.shape
        if (n, c, h, w) != (cfg.context, 3, cfg.size, cfg.size) or actions_bn.shape != (b, n):
            raise InputError(
                f"the world model takes {cfg.context} context frames (3, {cfg.size}, {cfg.size}) and "
                f"{cfg.context} actions each; got frames {tuple(context_bnchw.shape)}, actions {tuple(actions_bn.shape)}"
            )
        if actions_bn.min() < 0 or actions_bn.max() >= cfg.num_actions:
            raise InputError(f"action ids must lie in 0..{cfg.num_actions - 1}")

    def forward(
        self,
        x_bchw: torch.Tensor,
        t_b: torch.Tensor,
        context_bnchw: torch.Tensor,
        actions_bn: torch.Tensor,
        context_noise_b: torch.Tensor,
        next_bchw: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The clean next frame seen through the noisy x (B, 3, H, W) at noise level t (B,), given the context
        frames (B, N, 3, H, W) in [-1, 1] (noised to level context_noise (B,)) and actions (B, N).
        Given the clean next frame too (training), also the heads' outputs on it, in one call
        (data-parallel training wraps `forward` alone)."""
        slots = torch.arange(self.cfg.context, device=actions_bn.device) * self.cfg.num_actions
        cond = (
            self.noise_embed(t_b[:, None])[:, 0]
            + self.context_noise_embed(context_noise_b[:, None])[:, 0]
            + self.action_embed(actions_bn + slots).sum(dim=1)
        )
        x = torch.cat([x_bchw, rearrange(context_bnchw, "b n c h w -> b (n c) h w")], dim=1)
        x0 = self.denoiser(x.to(memory_format=torch.channels_last), F.silu(cond))
        if next_bchw is None:
            return x0
        return x0, *self.heads(context_bnchw[:, -1], next_bchw, actions_bn[:, -1])


def load_world_model(directory: str | Path | None = None, device: torch.device | str = "cpu") -> WorldModel:
    """A trained world model from its folder (default: the bundled Pong model), in eval mode,
    on `device` ("auto": a CUDA GPU when one is visible)."""
    device = pick_device(device)
    path = resolve(directory, "world_pong")
    config, state, _ = load_model(path, WorldModel.kind)
    cfg = parse_config(path, WorldModelConfig, config)
    return build_with_weights(path, lambda: WorldModel(cfg), state).to(device).eval()
