"""Rectified flow (flow matching with straight paths), the objective of the video DiT.

Noise level t in [0, 1] per latent frame: t = 0 is data, t = 1 is pure noise, and
    x_t = (1 - t) * x_0 + t * noise,        velocity v = dx_t/dt = noise - x_0.
The model learns v; sampling integrates dx/dt = v from t = 1 down to t = 0.

Which t to train on matters more than anything else here:
* **Logit-normal** draws (Esser et al., 2024) put most training on the middle of the path,
  where predicting v is hardest, and little on the nearly clean or nearly pure-noise ends.
* **Timestep shift.** More tokens carry more redundant signal, so at the same t a large
  video is easier to see through the noise than a small image. Shifting t towards 1 with
  t' = s t / (1 + (s - 1) t), s = sqrt(tokens / reference tokens), gives a long clip the
  same effective signal-to-noise ratio as a reference-size input; training and sampling use
  the same s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from filmstrip.config import require
from filmstrip.errors import InputError


@dataclass(frozen=True)
class FlowConfig:
    logit_mean: float = 0.0
    logit_std: float = 1.0
    reference_tokens: int = 64  # token count at which the shift is 1 (one 128x128 frame at patch 2)
    # Fixed shift; None: from the token count. What matters is where training puts its samples
    # against the noise level at which the content is decided: for `shapes` at 17x64x64 an
    # object's direction is settled at t ~ 0.9, and 4.5 puts a quarter of training above it
    # where the token-count rule (1.1) puts 2% (docs/RESULTS.md, session 7).
    shift: float | None = None

    def __post_init__(self):
        require(self, at_least={"reference_tokens": 1}, above={"logit_std": 0})
        if self.shift is not None and not self.shift > 0:
            raise InputError(f"shift must be more than 0 (or None: from the token count), got {self.shift}")


def timestep_shift(num_tokens: int, cfg: FlowConfig) -> float:
    """s = sqrt(tokens / reference), at least 1: only ever move larger inputs to more noise."""
    if cfg.shift is not None:
        return cfg.shift
    return max(1.0, math.sqrt(num_tokens / cfg.reference_tokens))


def shift_t(t: torch.Tensor, shift: float) -> torch.Tensor:
    return shift * t / (1 + (shift - 1) * t)


def sample_t(
    shape: tuple[int, ...],
    shift: float,
    cfg: FlowConfig,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Training noise levels: logit-normal, then shifted."""
    u = torch.randn(shape, generator=generator, device=device) * cfg.logit_std + cfg.logit_mean
    return shift_t(torch.sigmoid(u), shift)


def _per_frame(t_bt: torch.Tensor) -> torch.Tensor:
    return t_bt[:, None, :, None, None]  # (B, T) -> broadcast over (B, C, T, H, W)


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t_bt: torch.Tensor) -> torch.Tensor:
    """x_t for latents (B, C, T, H, W) and a noise level per frame (B, T)."""
    t = _per_frame(t_bt).to(x0.dtype)
    return (1 - t) * x0 + t * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return noise - x0


def per_frame_loss(
    v_pred: torch.Tensor, v_target: torch.Tensor, weight_bthw: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean squared error of each latent frame: (B, T); with `weight_bthw`, the mean over each
    frame's latent pixels weighted by it (so the loss keeps its scale whatever the weights)."""
    error_bthw = (v_pred.float() - v_target.float()).square().mean(dim=1)
    if weight_bthw is None:
        return error_bthw.mean(dim=(2, 3))
    weight_bthw = weight_bthw.float()
    return (error_bthw * weight_bthw).sum(dim=(2, 3)) / weight_bthw.sum(dim=(2, 3))


def loss_by_bin(t_bt: torch.Tensor, frame_loss_bt: torch.Tensor, bins: int = 4) -> dict[str, float]:
    """Mean loss per noise-level bin, the diagnostic that matters for flow matching: a model
    can look fine on average while failing at low or high noise."""
    out = {}
    edges = torch.linspace(0, 1, bins + 1)
    for i in range(bins):
        sel = (t_bt >= edges[i]) & (t_bt < edges[i + 1] if i < bins - 1 else t_bt <= 1)
        if sel.any():
            out[f"loss_t{edges[i]:.2f}"] = float(frame_loss_bt[sel].mean())
    return out
