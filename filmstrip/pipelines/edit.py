"""Editing a given clip with the text-to-video model: video-to-video and inversion.

    video = video_to_video(pipe, clip, ["a blue circle moves up"], GenerateConfig(), strength=0.6)
    video = edit(pipe, clip, ["a red circle moves up"], ["a blue circle moves up"], GenerateConfig())

* **Video-to-video (SDEdit, Meng et al., 2022).** The clip's latents are noised to level
  `strength` with the seed's noise, x = (1 - s) z + s n, and denoised from there under the new
  prompt along the part of the usual schedule below s. Strength 0 returns the clip's own
  latents; strength 1 is plain text-to-video from the same seed, ignoring the clip.
* **Inversion.** The flow's ODE is integrated backwards, from the clip's latents at t = 0 to
  t = 1, under the clip's own prompt; integrating forwards again from that noise gives the clip
  back (up to the solver's error), and under an edited prompt changes what the prompt changes
  while the noise keeps the layout and motion. Guidance is off during inversion by default:
  guided velocities do not retrace the path.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from filmstrip.diffusion.flow import add_noise
from filmstrip.errors import InputError
from filmstrip.pipelines.denoise import Pipeline, decode, denoise, encode, initial_noise, make_schedule
from filmstrip.pipelines.generate import GenerateConfig
from filmstrip.pipelines.prepare import prepare_text, stack_levels


def partial_schedule(sched: torch.Tensor, strength: float) -> torch.Tensor:
    """The rows of a (steps + 1, T) schedule below `strength`, starting at `strength`."""
    if not 0.0 <= strength <= 1.0:
        raise InputError(f"strength is a noise level in [0, 1], got {strength}")
    below = sched[(sched < strength).all(dim=1)]
    start = torch.full((1, sched.shape[1]), float(strength), dtype=sched.dtype)
    return torch.cat([start, below]) if strength > 0 else start


@torch.no_grad()
def sdedit_latents(
    pipe: Pipeline,
    z: torch.Tensor,
    prompts: Sequence[str],
    cfg: GenerateConfig,
    strength: float,
    negative: str = "",
) -> torch.Tensor:
    """Normalised latents z (B, C, T', H', W') renoised to `strength` and denoised under `prompts`."""
    sched = partial_schedule(make_schedule(pipe, z.shape, cfg.steps, cfg.lag), strength)
    noise = initial_noise(z.shape, cfg.seed, z.device)
    x = add_noise(z, noise, sched[0][None].expand(z.shape[0], -1).to(z.device))
    levels = stack_levels([prepare_text(pipe.text, prompts, negative)])
    return denoise(pipe.denoiser, x, sched, levels, [cfg.text_scale], cfg.solver)


def video_to_video(
    pipe: Pipeline,
    video_bcthw: torch.Tensor,
    prompts: Sequence[str],
    cfg: GenerateConfig,
    strength: float,
    negative: str = "",
) -> torch.Tensor:
    """The clip redrawn under `prompts`, keeping its structure more the lower `strength` is."""
    z = encode(pipe, video_bcthw)
    return decode(pipe, sdedit_latents(pipe, z, prompts, cfg, strength, negative), video_bcthw.shape[2])


@torch.no_grad()
def invert(
    pipe: Pipeline,
    z: torch.Tensor,
    prompts: Sequence[str],
    steps: int,
    text_scale: float = 1.0,
    solver: str = "euler",
) -> torch.Tensor:
    """The noise (t = 1) from which the flow under `prompts` leads to latents z (t = 0)."""
    sched = make_schedule(pipe, z.shape, steps).flip(0)  # 0 -> 1
    levels = stack_levels([prepare_text(pipe.text, prompts)])
    return denoise(pipe.denoiser, z, sched, levels, [text_scale], solver)


def edit(
    pipe: Pipeline,
    video_bcthw: torch.Tensor,
    source_prompts: Sequence[str],
    target_prompts: Sequence[str],
    cfg: GenerateConfig,
    inversion_scale: float = 1.0,
) -> torch.Tensor:
    """Invert the clip under its own prompt, then regenerate it under the edited one."""
    z = encode(pipe, video_bcthw)
    noise = invert(pipe, z, source_prompts, cfg.steps, inversion_scale, cfg.solver)
    levels = stack_levels([prepare_text(pipe.text, target_prompts)])
    out = denoise(
        pipe.denoiser,
        noise,
        make_schedule(pipe, z.shape, cfg.steps, cfg.lag),
        levels,
        [cfg.text_scale],
        cfg.solver,
    )
    return decode(pipe, out, video_bcthw.shape[2])
