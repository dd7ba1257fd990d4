"""Structure control for the video DiT: a ControlNet side branch (Zhang et al. 2023, in the
transformer form of PixArt-delta) on a frozen, trained DiT.

    maps (B, C, T, H, W) in [0, 1]  (object masks, edges; pixel frames and size)
      --encoder: per frame, log2(16) stride-2 convs down to the token grid; then the causal
        VAE's frame grouping (frame 0 alone, then groups of 4), each group's frames folded
        in order by a linear layer (frame 0 repeated to a group) --> (B, T', S, D)
      --zero-initialised linear--> added to the DiT's embedded tokens
      --copies of the DiT's first `depth` blocks (trainable, starting as the base's own)-->
      after each, a zero-initialised linear --> a residual added to the output of the base
      block of the same index

Both ends of the branch are zero, so a new ControlNet is an exact no-op and training starts
from the base model's own output; the base stays frozen, so the branch can be switched off
(`scale` 0) or swapped. The residuals are computed once per forward from what the DiT's
blocks read (`VideoDiT.forward(branch=...)`): the noisy tokens, the per-frame conditioning,
RoPE, the text.

`ControlledDiT` is what the samplers call: a DiT plus a branch that reads `cond.control`,
and passes everything else through, so every pipeline works with it unchanged.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from filmstrip.checkpoint import build_with_weights, load_model, parse_config, save_model
from filmstrip.config import check_types
from filmstrip.errors import InputError
from filmstrip.models.conditioning import Conditioning
from filmstrip.models.dit import DiTBlock, DiTConfig, VideoDiT


@dataclass(frozen=True)
class ControlNetConfig:
    channels: int = 1  # channels of a structure map (object masks: 1)
    depth: int = 3  # copies of the DiT's first blocks
    temporal_factor: int = 4  # pixel frames per latent frame after the first (the VAE's)
    spatial_factor: int = 8  # pixels per latent pixel (the VAE's); times the DiT's patch: per token
    # How a latent frame's pixel frames combine: "ordered" (a linear layer over them in order,
    # starting as their mean) or "mean" (which cannot tell where in the group an object was:
    # IoU fell from 0.78 on frame 0 to 0.64 on the last, the VAE's own ceiling staying 0.83).
    fold: str = "ordered"

    def __post_init__(self):
        check_types(self, "controlnet")
        if self.channels < 1 or self.depth < 1 or self.temporal_factor < 1:
            raise InputError("a ControlNet needs channels, depth and temporal_factor of at least 1")
        if self.fold not in ("ordered", "mean"):
            raise InputError(f"fold must be 'ordered' or 'mean', got {self.fold!r}")
        if self.spatial_factor < 1 or self.spatial_factor & (self.spatial_factor - 1):
            raise InputError(f"spatial_factor must be a power of 2, got {self.spatial_factor}")


class MapEncoder(nn.Module):
    """Structure maps (B, C, T, H, W) -> token features (B, T', S, D) on the DiT's grid."""

    def __init__(self, channels: int, width: int, cfg: ControlNetConfig, patch: tuple[int, int, int]):
        super().__init__()
        if patch[0] != 1 or patch[1] != patch[2] or patch[1] & (patch[1] - 1):
            raise InputError(f"a ControlNet needs a DiT patch of (1, p, p), p a power of 2; got {patch}")
        self.temporal_factor = cfg.temporal_factor
        steps = int(math.log2(cfg.spatial_factor * patch[1]))
        widths = [min(16 * 2**k, width) for k in range(steps + 1)]
        layers: list[nn.Module] = [nn.Conv2d(channels, widths[0], 3, padding=1), nn.SiLU()]
        for k in range(steps):
            layers += [nn.Conv2d(widths[k], widths[k + 1], 3, stride=2, padding=1), nn.SiLU()]
        layers.append(nn.Conv2d(widths[-1], width, 1))
        self.net = nn.Sequential(*layers)
        self.fold = None
        if cfg.fold == "ordered":
            k = cfg.temporal_factor
            self.fold = nn.Linear(k * width, width)
            with torch.no_grad():  # start as the mean of the group's frames
                self.fold.weight.copy_(torch.eye(width).repeat(1, k) / k)
                self.fold.bias.zero_()

    def forward(self, maps_bcthw: torch.Tensor) -> torch.Tensor:
        b, _, t = maps_bcthw.shape[:3]
        frames = maps_bcthw.transpose(1, 2).flatten(0, 1)  # (B T, C, H, W)
        f = self.net(frames.to(self.net[0].weight.dtype))  # (B T, D, H', W')
        f = f.flatten(2).transpose(1, 2).unflatten(0, (b, t))  # (B, T, S, D)
        # The causal VAE's grouping: frame 0 is latent frame 0, then `temporal_factor` a latent frame.
        k = self.temporal_factor
        rest = t - 1
        if rest % k:
            raise InputError(f"structure maps of {t} frames: need 1 + {k} n frames, as the video has")
        if self.fold is None:
            if rest == 0:
                return f
            groups = f[:, 1:].unflatten(1, (rest // k, k)).mean(dim=2)
            return torch.cat([f[:, :1], groups], dim=1)
        # Frame 0 is a latent frame of its own: repeated to a group, as the VAE pads it.
        f = torch.cat([f[:, :1].expand(-1, k, -1, -1), f[:, 1:]], dim=1)  # (B, k (1 + n), S, D)
        groups = f.unflatten(1, (1 + rest // k, k))  # (B, T', k, S, D)
        return self.fold(groups.permute(0, 1, 3, 2, 4).flatten(3))


class ControlNet(nn.Module):
    kind = "controlnet"

    def __init__(self, dit_cfg: DiTConfig, cfg: ControlNetConfig):
        super().__init__()
        if cfg.depth > dit_cfg.depth:
            raise InputError(f"a ControlNet of depth {cfg.depth} on a DiT of depth {dit_cfg.depth}")
        self.cfg, self.dit_cfg = cfg, dit_cfg
        d = dit_cfg.width
        self.encoder = MapEncoder(cfg.channels, d, cfg, dit_cfg.patch)
        self.hint = nn.Linear(d, d)
        self.blocks = nn.ModuleList(DiTBlock(dit_cfg) for _ in range(cfg.depth))
        self.outs = nn.ModuleList(nn.Linear(d, d) for _ in range(cfg.depth))
        for layer in (self.hint, *self.outs):  # zero in, zero out: an exact no-op at the start
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    @classmethod
    def from_dit(cls, dit: VideoDiT, cfg: ControlNetConfig) -> ControlNet:
        """A new branch whose blocks start as copies of `dit`'s first blocks (on its device,
        in its dtype)."""
        like = next(dit.parameters())
        net = cls(dit.cfg, cfg).to(like.device, like.dtype)
        for mine, theirs in zip(net.blocks, dit.blocks, strict=False):
            mine.load_state_dict(copy.deepcopy(theirs.state_dict()))
        return net

    def branch(self, maps_bcthw: torch.Tensor, scale: float = 1.0) -> Callable[..., list[torch.Tensor]]:
        """The side branch for `VideoDiT.forward(branch=...)`, reading these maps."""

        def residuals(x_btsd, c_btd, rot, context, context_mask, mask) -> list[torch.Tensor]:
            hint = self.hint(self.encoder(maps_bcthw.to(x_btsd.device)).to(x_btsd.dtype))  # (B, T', S, D)
            if hint.shape[1] > x_btsd.shape[1]:
                raise InputError(
                    f"structure maps give {hint.shape[1]} latent frames of {hint.shape[2]} tokens; "
                    f"the video has {x_btsd.shape[1]} of {x_btsd.shape[2]}"
                )
            if hint.shape[2] != x_btsd.shape[2]:
                raise InputError(
                    f"structure maps of {tuple(maps_bcthw.shape[-2:])} do not match the video's size"
                )
            # Appended keyframes (diffusion/frames.py) come after the clip's frames: no hint there.
            extra = x_btsd.shape[1] - hint.shape[1]
            hint = torch.cat([hint, hint.new_zeros(hint.shape[0], extra, *hint.shape[2:])], dim=1)
            h, out = x_btsd + hint, []
            for block, zero in zip(self.blocks, self.outs, strict=True):
                h = block(h, c_btd, rot, context, context_mask, mask)
                out.append(scale * zero(h))
            return out

        return residuals


class ControlledDiT(nn.Module):
    """A DiT with a ControlNet: reads `cond.control` with the branch, the rest with the DiT."""

    def __init__(self, dit: VideoDiT, net: ControlNet, scale: float = 1.0):
        super().__init__()
        self.dit, self.net, self.scale = dit, net, scale

    @property
    def cfg(self) -> DiTConfig:
        return self.dit.cfg

    @property
    def vector_embed(self) -> nn.ModuleDict:
        return self.dit.vector_embed

    def forward(self, z_bcthw: torch.Tensor, t: torch.Tensor, cond: Conditioning | None = None, **kwargs):
        if cond is None or cond.control is None:
            return self.dit(z_bcthw, t, cond, **kwargs)
        branch = self.net.branch(cond.control, self.scale) if self.scale else None
        return self.dit(z_bcthw, t, cond.without_control(), branch=branch, **kwargs)


def save_controlnet(directory: str | Path, net: ControlNet, meta: dict | None = None) -> Path:
    config = {"controlnet": asdict(net.cfg), "base": asdict(net.dit_cfg)}
    return save_model(directory, ControlNet.kind, config, net.state_dict(), meta)


def load_controlnet(directory: str | Path, dit: VideoDiT) -> ControlNet:
    """A trained ControlNet for `dit`; one sentence if it was trained for another DiT."""
    config, state, meta = load_model(directory, ControlNet.kind)
    cfg = parse_config(directory, ControlNetConfig, config.get("controlnet"), "controlnet")
    base = parse_config(directory, DiTConfig, config.get("base"), "base")
    fields = ("width", "depth", "heads", "mlp_ratio", "context_dim", "patch", "attention")
    differ = [f"{k} {getattr(base, k)} (this model: {getattr(dit.cfg, k)})" for k in fields
              if getattr(base, k) != getattr(dit.cfg, k)]  # fmt: skip
    if differ:
        trained_on = f": -c {meta['base_model']}" if meta.get("base_model") else ""
        raise InputError(
            f"{directory}: this ControlNet was trained for another model shape ({', '.join(differ)}); "
            f"use it with the model it was trained on{trained_on}"
        )
    return build_with_weights(directory, lambda: ControlNet(dit.cfg, cfg), state)
