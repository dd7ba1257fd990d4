"""The denoising core every pipeline shares, one function per step:

    shape = latent_shape(pipe, batch, frames, height, width)
    x     = initial_noise(shape, seed, device)
    sched = make_schedule(pipe, shape, steps, lag)
    x, sched = place_frames(x, sched, plan.in_place)    (image, keyframe and video conditions)
    z     = denoise(pipe.denoiser, x, sched, levels, scales, solver)
    video = decode(pipe, z, frames)

Given pixels (an image, a clip to extend or edit) enter the latent space through `encode`.

Text to video, image to video, keyframes, world-model rollouts: each is a different set of
prepared conditions (prepare.py) around the same `denoise`. Everything random comes from one
seeded generator on the CPU, so a seed gives the same video on any device.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from filmstrip.checkpoint import CheckpointError, build_with_weights, load_model, parse_config, resolve
from filmstrip.device import pick_device
from filmstrip.diffusion.guidance import guided
from filmstrip.diffusion.sampling import sample, schedule
from filmstrip.diffusion.spec import ModelSpec
from filmstrip.errors import FilmstripError, InputError
from filmstrip.io.layout import check_pixels
from filmstrip.io.memory import check_fits
from filmstrip.models.conditioning import Conditioning
from filmstrip.models.dit import DiTConfig, VideoDiT
from filmstrip.models.vae import VideoVAE, load_vae
from filmstrip.precision import autocast, use_bf16
from filmstrip.text.encoder import TextEncoder


@dataclass
class Pipeline:
    """The frozen parts: a DiT, the VAE of its latent space, the text encoder when the DiT
    reads text, and the spec that says how its latents and noise levels are read."""

    dit: VideoDiT
    vae: VideoVAE
    text: TextEncoder | None
    spec: ModelSpec
    # How the samplers run the DiT: under bf16 autocast (see precision.py), and through
    # torch.compile (its first call compiles for about a minute; later ones run ~1.4x faster
    # on a CPU: for long rollouts and evaluations, not one clip). The VAE stays in float32.
    bf16: bool = False
    compile: bool = False
    trained_on: str = ""  # what the checkpoint says the DiT learned from ("shapes ...", "folder:...")
    # (frames, height, width, clips) of each clip shape it learned from, most clips first; empty
    # where the checkpoint does not say (models trained before it was recorded).
    trained_shapes: tuple[tuple[int, int, int, int], ...] = ()

    @property
    def device(self) -> torch.device:
        return next(self.dit.parameters()).device

    @functools.cached_property
    def denoiser(self) -> Callable[..., torch.Tensor]:
        """The DiT as `denoise` calls it, compiled and under autocast as asked; float32 out."""
        forward = torch.compile(self.dit) if self.compile else self.dit
        if not self.bf16:
            return forward
        device = self.device

        def under_autocast(*args, **kwargs) -> torch.Tensor:
            with autocast(True, device):
                return forward(*args, **kwargs).float()

        return under_autocast


def load_pipeline(
    path: str | Path | None = None,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    compile: bool = False,
) -> Pipeline:
    """The DiT in `path` (default: the bundled text-to-video model) with its VAE, and the text
    encoder if the DiT takes text, on `device` ("auto": a CUDA GPU when one is visible).
    precision: "fp32", "bf16" or "auto" (bf16 where the device runs it fast) for the DiT's
    forward; compile: torch.compile it."""
    device = pick_device(device)
    bf16 = use_bf16(precision, device)
    directory = resolve(path, "t2v")
    config, state, meta = load_model(directory, VideoDiT.kind)
    dit_cfg = parse_config(directory, DiTConfig, config.get("dit"), "dit")
    dit = build_with_weights(directory, lambda: VideoDiT(dit_cfg), state)
    # Format 1 kept the spec inside the training settings ("t2v").
    try:
        spec = ModelSpec.from_dict(config.get("spec", config.get("t2v", {})))
    except InputError as e:
        raise CheckpointError(f"{directory}: {e}") from None
    vae_dir = resolve(spec.vae, "vae3d", relative_to=directory)
    beside = directory / Path(spec.vae).name  # a model copied to another machine with its VAE
    if not (vae_dir / "config.json").exists() and (beside / "config.json").exists():
        vae_dir = beside
    if not (vae_dir / "config.json").exists():
        raise InputError(
            f"{directory}: the VAE {spec.vae!r} that this model was trained with was not found (a model "
            f"moved to another place finds it in a folder {beside.name!r} beside it)"
        )
    text = TextEncoder(device) if dit.cfg.context_dim else None
    trained_on = str(meta.get("data", ""))
    shapes = tuple(
        tuple(s) for s in meta.get("shapes", []) if len(s) == 4 and all(isinstance(v, int) for v in s)
    )
    return Pipeline(
        dit.to(device).eval(), load_vae(vae_dir, device), text, spec, bf16, compile, trained_on, shapes
    )


def latent_shape(
    pipe: Pipeline, batch: int, frames: int, height: int, width: int, held: int | None = None
) -> tuple[int, ...]:
    """(B, C, T', H', W') of the latents of `batch` videos of frames x height x width, after
    checking that making them fits in memory. held: the most latent frames the model works on
    at once (a stream's cache window, sinks and chunk; None: all of them)."""
    f = pipe.vae.cfg.spatial_factor
    block = f * max(pipe.dit.cfg.patch[1:])
    if height < block or width < block or height % block or width % block:
        raise InputError(
            f"cannot generate {width}x{height} (width x height): both must be positive multiples of {block} "
            f"(the VAE's {f}x times the DiT's patch)"
        )
    if frames < 1:
        raise InputError(f"cannot generate {frames} frames: ask for at least 1")
    shape = (batch, pipe.dit.cfg.in_channels, pipe.vae.latent_frames(frames), height // f, width // f)
    peak, pixels = shape, frames
    if held is not None and held < shape[2]:  # decoded as made, a few latent frames at a time
        peak, pixels = (*shape[:2], held, *shape[3:]), held * pipe.vae.cfg.temporal_factor
    check_fits(memory_estimate(pipe, peak, pixels), f"generating {batch} x {frames} frames at {width}x{height}",
               "ask for fewer frames or a smaller size", pipe.device)  # fmt: skip
    return shape


def memory_estimate(pipe: Pipeline, shape: Sequence[int], frames: int) -> float:
    """Bytes at the peak, roughly: the larger of the DiT's attention scores (two guidance
    branches, every head, fp32; a lower bound where SDPA runs a fused kernel) and the VAE
    decoder's widest full-resolution activations (a few maps of its finest width)."""
    b, _, t, h, w = shape
    cfg = pipe.dit.cfg
    tokens = (t // cfg.patch[0]) * (h // cfg.patch[1]) * (w // cfg.patch[2])
    per_frame = tokens // max(1, t // cfg.patch[0])
    keys = per_frame if cfg.attention == "factorized" else tokens
    attention = 2 * b * cfg.heads * tokens * keys * 4
    f = pipe.vae.cfg.spatial_factor
    decoder = 4 * b * pipe.vae.cfg.channels[0] * frames * (h * f) * (w * f) * 4
    return float(max(attention, decoder))


def initial_noise(shape: Sequence[int], seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Gaussian noise of `shape`; row k comes from seed + k, so a batch reproduces the same
    requests made one by one (and a suite's results do not depend on its batch size)."""
    rows = [
        torch.randn(tuple(shape[1:]), generator=torch.Generator().manual_seed(seed + k))
        for k in range(shape[0])
    ]
    return torch.stack(rows).to(device)


# A causal model's frames must be denoised after the frames before them are clearer: with one
# noise level for all, its prompt adherence for direction of motion fell to 69%, on a pyramid
# with lag 1 it is 94.7% / 91.3% (docs/RESULTS.md, session 17).
CAUSAL_LAG = 1.0


def default_lag(pipe: Pipeline) -> float:
    """The pyramid lag a model samples best with when none is asked for."""
    return CAUSAL_LAG if pipe.dit.cfg.causal else 0.0


def make_schedule(pipe: Pipeline, shape: Sequence[int], steps: int, lag: float | None = None) -> torch.Tensor:
    """(steps + 1, T') noise levels, shifted as the model was trained for this many tokens;
    lag None: the model's default (`default_lag`)."""
    lag = default_lag(pipe) if lag is None else lag
    return schedule(steps, shape[2], pipe.spec.shift(tuple(shape[2:]), pipe.dit.cfg.patch), lag)


def place_frames(
    x: torch.Tensor,
    sched: torch.Tensor,
    frames: Mapping[int, torch.Tensor | tuple[torch.Tensor, float]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """In-place frame conditions: latent frame k of every row holds frames[k] ((B, C, H', W')
    or (C, H', W') normalised latents, or a (latent, strength) pair). At strength 1 (the
    default) column k of the schedule is 0: the model sees t = 0 there and no step moves the
    frame, so it comes back exactly. At strength s < 1 the frame starts noised to level 1 - s
    (with x's own noise there) and follows the schedule scaled by 1 - s, so the model redraws
    it a little. Returns the new x and schedule."""
    x, sched = x.clone(), sched.clone()
    for k, item in frames.items():
        latent, strength = item if isinstance(item, tuple) else (item, 1.0)
        if not -x.shape[2] <= k < x.shape[2]:
            raise InputError(f"latent frame {k} is outside a clip of {x.shape[2]} latent frames")
        sched[:, k] = sched[:, k] * (1.0 - strength)
        level = float(sched[0, k])
        latent = latent.to(x.device, x.dtype)
        x[:, :, k] = latent if level == 0.0 else (1 - level) * latent + level * x[:, :, k]
    return x, sched


@torch.no_grad()
def denoise(
    model: Callable[..., torch.Tensor],
    x: torch.Tensor,
    sched: torch.Tensor,
    levels: Sequence[Conditioning],
    scales: Sequence[float] = (),
    solver: str = "euler",
    progress: bool = False,
) -> torch.Tensor:
    """Integrate x (B, C, T', H', W') along `sched`, guided over `levels` (all-null to all-real
    conditioning, see diffusion/guidance.py) with `scales`; model: a DiT, or a pipeline's
    `denoiser`. Returns the clean latents."""
    device = x.device
    levels = [level.to(device) for level in levels]
    return finite(sample(guided(model, levels, scales), x, sched, solver, progress=progress))


def finite(z: torch.Tensor) -> torch.Tensor:
    """Sampled latents, checked: NaN or Inf get one sentence rather than a black video."""
    if not torch.isfinite(z).all():
        raise FilmstripError("sampling produced NaN or Inf latents: check the options and the weights")
    return z


@torch.no_grad()
def encode(pipe: Pipeline, video_bcthw: torch.Tensor) -> torch.Tensor:
    """Pixels (B, 3, T, H, W) in [-1, 1] -> the DiT's normalised latents."""
    if video_bcthw.ndim != 5 or video_bcthw.shape[1] != 3:
        raise InputError(f"pixels to encode are (B, 3, T, H, W), got {tuple(video_bcthw.shape)}")
    check_pixels(video_bcthw, "a clip to encode")
    return pipe.spec.normalize(pipe.vae.encode(video_bcthw.to(pipe.device)).float())


@torch.no_grad()
def decode(pipe: Pipeline, z: torch.Tensor, frames: int) -> torch.Tensor:
    """Normalised latents -> videos (B, 3, frames, H, W) in [-1, 1] on the CPU, checked to be
    finite."""
    return finished(pipe.vae.decode(pipe.spec.denormalize(z), frames))


def finished(video: torch.Tensor) -> torch.Tensor:
    """Decoded pixels as every pipeline returns them: checked to be finite, clamped to [-1, 1]
    and on the CPU, where they are written, shown and scored (by NumPy and OpenCV), whichever
    device made them."""
    if not torch.isfinite(video).all():
        raise FilmstripError(
            "the model produced non-finite values (NaN or Inf): check the options and the weights"
        )
    return video.clamp(-1, 1).cpu()
