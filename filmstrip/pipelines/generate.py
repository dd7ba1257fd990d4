"""Text to video: encode the prompt -> denoise latents -> decode pixels.

    pipe = load_pipeline()                      # the bundled model, its VAE, the text encoder
    video = generate(pipe, ["a red circle moves to the right"], GenerateConfig(seed=0))

Every step is a function of the shared core (denoise.py); this body only chooses them.
Guidance runs the unconditional (or negative-prompt) and the conditional prediction as one
batch, and is skipped at scale 1. In a batch, prompt k uses seed + k.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from filmstrip.errors import InputError
from filmstrip.pipelines.denoise import (  # noqa: F401 (Pipeline and load_pipeline: this module's API)
    Pipeline,
    decode,
    denoise,
    initial_noise,
    latent_shape,
    load_pipeline,
    make_schedule,
)
from filmstrip.pipelines.prepare import check_prompts, prepare_text, stack_levels


@dataclass(frozen=True)
class GenerateConfig:
    frames: int = 17
    height: int = 64
    width: int = 64
    steps: int = 20
    text_scale: float = 4.0
    solver: str = "euler"
    seed: int = 0
    # Pyramid schedule: how far (a share of the run) the last frame trails the first. 0: every
    # frame at one noise level. Only for models trained with per-frame noise levels.
    lag: float = 0.0

    def __post_init__(self):
        if not math.isfinite(self.text_scale):
            raise InputError(f"the guidance scale must be a finite number, got {self.text_scale}")
        if not 0 <= self.seed < 2**32:
            raise InputError(f"the seed must be in [0, 2^32), got {self.seed}")
        if self.steps < 1:
            raise InputError(f"cannot sample in {self.steps} steps: use at least 1")
        if not math.isfinite(self.lag) or self.lag < 0:
            raise InputError(f"the pyramid lag is a share of the run, at least 0; got {self.lag}")


def check_request(pipe: Pipeline, prompts: Sequence[str], cfg: GenerateConfig) -> None:
    """Refuse a request before any work: an empty prompt or a size the model cannot make."""
    check_prompts(prompts)
    latent_shape(pipe, len(prompts), cfg.frames, cfg.height, cfg.width)


@torch.no_grad()
def generate(
    pipe: Pipeline, prompts: Sequence[str], cfg: GenerateConfig, negative: str = "", progress: bool = False
) -> torch.Tensor:
    """Videos (B, 3, frames, height, width) in [-1, 1] for B prompts."""
    check_prompts(prompts)
    shape = latent_shape(pipe, len(prompts), cfg.frames, cfg.height, cfg.width)
    levels = stack_levels([prepare_text(pipe.text, prompts, negative)])
    x = initial_noise(shape, cfg.seed, pipe.device)
    sched = make_schedule(pipe, shape, cfg.steps, cfg.lag)
    z = denoise(pipe.dit, x, sched, levels, [cfg.text_scale], cfg.solver, progress)
    return decode(pipe, z, cfg.frames)
