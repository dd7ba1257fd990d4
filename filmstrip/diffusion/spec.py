"""What sampling a trained DiT needs besides its weights: the model-side spec.

A DiT's checkpoint stores its `DiTConfig` (the network), this `ModelSpec` (how its latents and
noise levels are to be read) and, apart, the settings it was trained with. Training writes the
spec, pipelines read it; neither imports the other.

* `flow`: the rectified-flow settings, above all the timestep shift, which sampling must use
  exactly as training did;
* `latent_shift`, `latent_scale`: the VAE latents' measured mean and 1 / std, so the DiT works
  on unit-variance latents;
* `vae`: the autoencoder the latents came from, a bundled model's name or a path (relative
  paths are next to the DiT's checkpoint).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import torch

from filmstrip.config import from_dict
from filmstrip.diffusion.flow import FlowConfig, timestep_shift
from filmstrip.errors import InputError
from filmstrip.models.embeddings import token_grid
from filmstrip.models.vae import denormalize_latents, normalize_latents


@dataclass(frozen=True)
class ModelSpec:
    flow: FlowConfig = field(default_factory=FlowConfig)
    latent_shift: float = 0.0
    latent_scale: float = 1.0
    vae: str = "vae3d"

    def __post_init__(self):
        if not (
            math.isfinite(self.latent_scale) and self.latent_scale > 0 and math.isfinite(self.latent_shift)
        ):
            raise InputError(
                f"latent_scale must be a positive number and latent_shift finite, got "
                f"{self.latent_scale} and {self.latent_shift}"
            )

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """VAE latents -> the DiT's unit-variance latents."""
        return normalize_latents(z, self.latent_shift, self.latent_scale)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return denormalize_latents(z, self.latent_shift, self.latent_scale)

    def shift(self, latent_thw: tuple[int, int, int], patch: tuple[int, int, int]) -> float:
        """The timestep shift for latents of (T, H, W) at this patch size."""
        t, h, w = token_grid(latent_thw, patch)
        return timestep_shift(t * h * w, self.flow)

    @classmethod
    def from_dict(cls, d: dict) -> ModelSpec:
        """From a checkpoint's "spec" (or, in format 1, its "t2v" section: extra training
        fields there are ignored)."""
        names = {f.name for f in fields(cls)}
        return from_dict(cls, {k: v for k, v in d.items() if k in names}, "spec")
