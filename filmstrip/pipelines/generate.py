"""Text to video: encode the prompt -> denoise latents -> decode pixels.

    video = generate(pipe, ["a red circle moves to the right"], GenerateConfig(seed=0))

`Pipeline` holds the three frozen parts (DiT, VAE, text encoder). Guidance runs the
conditional and the unconditional (or negative-prompt) predictions as one batch of 2B, and
is skipped entirely at scale 1. Everything random comes from one seeded generator on the
CPU, so a seed gives the same video on any device; in a batch, prompt k uses seed + k.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from filmstrip.checkpoint import CheckpointError, load_model
from filmstrip.diffusion.flow import FlowConfig, timestep_shift
from filmstrip.diffusion.sampling import guided, sample, schedule
from filmstrip.models.dit import DiTConfig, VideoDiT
from filmstrip.models.vae import BUNDLED_DIR, VideoVAE, load_vae
from filmstrip.text.encoder import TextEncoder
from filmstrip.train.t2v_task import T2VConfig, pad_text


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


@dataclass
class Pipeline:
    dit: VideoDiT
    vae: VideoVAE
    text: TextEncoder
    t2v: T2VConfig = field(default_factory=T2VConfig)

    @property
    def device(self) -> torch.device:
        return next(self.dit.parameters()).device


def load_pipeline(path: str | Path | None = None, device: torch.device | str = "cpu") -> Pipeline:
    """The DiT in `path` (default: the bundled text-to-video model) with its VAE and the text
    encoder."""
    config, state, _ = load_model(path if path is not None else BUNDLED_DIR / "t2v", VideoDiT.kind)
    dit_cfg = DiTConfig(**config["dit"])
    t2v = config.get("t2v", {})
    t2v_cfg = T2VConfig(**{**t2v, "flow": FlowConfig(**t2v.get("flow", {}))})
    dit = VideoDiT(dit_cfg)
    dit.load_state_dict(state)
    # The VAE: a bundled one by name, or a path (relative paths are next to the DiT).
    ref = Path(t2v_cfg.vae)
    candidates = [BUNDLED_DIR / t2v_cfg.vae, *([Path(path) / ref] if path is not None else []), ref]
    vae_path = next((c for c in candidates if (c / "config.json").exists()), None)
    if vae_path is None:
        raise CheckpointError(f"the VAE {t2v_cfg.vae!r} that this model was trained with was not found")
    return Pipeline(dit.to(device).eval(), load_vae(vae_path, device), TextEncoder(device), t2v_cfg)


def check_request(pipe: Pipeline, prompts: list[str], cfg: GenerateConfig) -> None:
    if not prompts or any(not p.strip() for p in prompts):
        raise ValueError("the prompt is empty: describe the video, e.g. 'a red circle moves to the right'")
    block = pipe.vae.cfg.spatial_factor * max(pipe.dit.cfg.patch[1:])
    if cfg.height < block or cfg.width < block or cfg.height % block or cfg.width % block:
        raise ValueError(
            f"cannot generate {cfg.height}x{cfg.width}: height and width must be positive multiples of {block} "
            f"(the VAE's {pipe.vae.cfg.spatial_factor}x times the DiT's patch)"
        )
    if cfg.frames < 1:
        raise ValueError(f"cannot generate {cfg.frames} frames: ask for at least 1")
    if cfg.steps < 1:
        raise ValueError(f"cannot sample in {cfg.steps} steps: use at least 1")
    if cfg.lag < 0:
        raise ValueError(f"the pyramid lag is a share of the run, at least 0; got {cfg.lag}")


@torch.no_grad()
def generate(
    pipe: Pipeline, prompts: list[str], cfg: GenerateConfig, negative: str = "", progress: bool = False
) -> torch.Tensor:
    """Videos (B, 3, frames, height, width) in [-1, 1] for B prompts."""
    check_request(pipe, prompts, cfg)
    device = pipe.device
    # 1. Encode the prompts and the unconditional / negative prompt.
    cond, cond_mask = pipe.text.encode(prompts)
    uncond, uncond_mask = pipe.text.encode([negative] * len(prompts))
    length = max(cond.shape[1], uncond.shape[1])
    cond, cond_mask = pad_text(cond, cond_mask, length)
    uncond, uncond_mask = pad_text(uncond, uncond_mask, length)
    # 2. Start from seeded noise in latent space.
    f = pipe.vae.cfg.spatial_factor
    shape = (
        len(prompts),
        pipe.dit.cfg.in_channels,
        pipe.vae.latent_frames(cfg.frames),
        cfg.height // f,
        cfg.width // f,
    )
    # Prompt k gets the noise of seed + k, so a batch reproduces the same prompts generated
    # one by one (and a suite's results do not depend on its batch size).
    noise = torch.stack(
        [
            torch.randn(shape[1:], generator=torch.Generator().manual_seed(cfg.seed + k))
            for k in range(shape[0])
        ]
    ).to(device)
    pt, ph, pw = pipe.dit.cfg.patch
    tokens = (shape[2] // pt) * (shape[3] // ph) * (shape[4] // pw)
    sched = schedule(cfg.steps, shape[2], timestep_shift(tokens, pipe.t2v.flow), cfg.lag)

    # 3. Denoise with guidance: both branches in one batch.
    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if cfg.text_scale == 1.0:
            return pipe.dit(x, t, cond, cond_mask)
        v = pipe.dit(
            torch.cat([x, x]),
            torch.cat([t, t]),
            torch.cat([uncond, cond]),
            torch.cat([uncond_mask, cond_mask]),
        )
        v_uncond, v_cond = v.chunk(2)
        return guided(v_uncond, v_cond, cfg.text_scale)

    z = sample(velocity, noise, sched, cfg.solver, progress=progress)
    # 4. Back to pixels.
    latents = z / pipe.t2v.latent_scale + pipe.t2v.latent_shift
    return pipe.vae.decode(latents, cfg.frames).clamp(-1, 1)
