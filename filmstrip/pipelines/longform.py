"""A long video from the bidirectional model, two ways (the baselines the causal rollout of
stream.py is measured against):

    video = sliding_windows(pipe, parse_timeline(["a red circle moves right"]), SlidingConfig(seconds=60))
    video = hierarchical(pipe, parse_timeline(["a red circle moves right"]), HierarchicalConfig(seconds=60))

**Sliding windows.**
The bidirectional DiT was trained on clips of 5 latent frames (17 pixel frames); a minute at
8 fps is 121. At every sampling step each window of `window` latent frames, one starting
every `stride` frames, predicts the velocity of its frames, and every latent frame moves by
the mean over the windows that hold it (MultiDiffusion; Gen-L-Video): neighbouring windows
must agree where they overlap, so no seam is left where one ends. All windows run as one
batch; each reads the prompt in force at its first frame.

With `noise_reuse` (FreeNoise), frames past the first window start from the first window's
noise, shuffled within each window-long block, so windows begin from related noise and
settle on related content.

**Hierarchical.** Sparse keyframes first, one per `segment` frames (two seconds), then the
frames between each pair with both ends given (first + last frame conditioning), all
segments in one batch. The bundled models include no coarse, low-frame-rate model, so the
keyframes come from a chain: keyframe 0 and 1 are the ends of a text-to-video clip, and each
next keyframe is the last frame of an image-to-video clip from the one before. Errors can
still accumulate along that chain, but every in-between segment is pinned at both ends, so
no join shows a jump and each segment's motion must reach a known place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from filmstrip.diffusion.guidance import guided
from filmstrip.diffusion.sampling import sample, schedule
from filmstrip.errors import FilmstripError, InputError
from filmstrip.pipelines.conditions import ImageCondition
from filmstrip.pipelines.denoise import Pipeline, finished, latent_shape
from filmstrip.pipelines.generate import GenerateConfig, generate
from filmstrip.pipelines.prepare import prepare_text, stack_levels
from filmstrip.pipelines.stream import chunk_seconds
from filmstrip.pipelines.timeline import LongVideo, Timeline


@dataclass(frozen=True)
class SlidingConfig(LongVideo):
    window: int = 5  # latent frames per window: the training length
    stride: int = 2  # latent frames between window starts (overlap: window - stride)
    noise_reuse: bool = False

    def __post_init__(self):
        super().__post_init__()
        if not 1 <= self.stride <= self.window:
            raise InputError(
                f"the stride must be between 1 and the window ({self.window}), got {self.stride}"
            )


def window_starts(total: int, window: int, stride: int) -> list[int]:
    """First latent frame of each window; the last window ends at the last frame."""
    if total <= window:
        return [0]
    starts = list(range(0, total - window + 1, stride))
    if starts[-1] != total - window:
        starts.append(total - window)
    return starts


def sliding_noise(shape: tuple[int, ...], window: int, seed: int, reuse: bool) -> torch.Tensor:
    """(1, C, T, H, W) starting noise; with `reuse`, every block of `window` frames after the
    first is a fresh shuffle of the first block's frames (FreeNoise)."""
    g = torch.Generator().manual_seed(seed)
    if not reuse:
        return torch.randn(shape, generator=g)
    base = torch.randn((*shape[:2], window, *shape[3:]), generator=g)
    blocks = [base]
    while sum(b.shape[2] for b in blocks) < shape[2]:
        blocks.append(base[:, :, torch.randperm(window, generator=g)])
    return torch.cat(blocks, dim=2)[:, :, : shape[2]]


@torch.no_grad()
def sliding_latents(pipe: Pipeline, timeline: Timeline, cfg: SlidingConfig) -> torch.Tensor:
    """Normalised latents (1, C, T', H', W') of the whole video."""
    timeline.check_length(cfg.frames / cfg.fps)
    shape = latent_shape(pipe, 1, cfg.frames, cfg.height, cfg.width)
    total, window = shape[2], min(cfg.window, shape[2])
    starts = window_starts(total, window, cfg.stride)
    tf = pipe.vae.cfg.temporal_factor
    prompts = [timeline.prompt_at(chunk_seconds(s, tf, cfg.fps)) for s in starts]
    levels = [lv.to(pipe.device) for lv in stack_levels([prepare_text(pipe.text, prompts)])]
    per_window = guided(pipe.denoiser, levels, [cfg.text_scale])
    index = torch.tensor(starts)[:, None] + torch.arange(window)  # (windows, window) latent frames
    covered = torch.bincount(index.flatten(), minlength=total).float()  # windows holding each frame

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Every frame's velocity: the mean over the windows that hold it."""
        windows = x[0, :, index].permute(1, 0, 2, 3, 4)  # (windows, C, window, H', W')
        v = per_window(windows, t[0, index.to(t.device)])  # (windows, C, window, H', W')
        v_sum = torch.zeros_like(x[0]).index_add_(
            1, index.flatten().to(x.device), v.permute(1, 0, 2, 3, 4).flatten(1, 2)
        )
        return (v_sum / covered.to(x.device)[None, :, None, None])[None]

    shift = pipe.spec.shift((window, *shape[3:]), pipe.dit.cfg.patch)
    noise = sliding_noise(shape, window, cfg.seed, cfg.noise_reuse).to(pipe.device)
    x = sample(velocity, noise, schedule(cfg.steps, total, shift))
    if not torch.isfinite(x).all():
        raise FilmstripError("sampling produced NaN or Inf latents: check the options and the weights")
    return x


@torch.no_grad()
def sliding_windows(pipe: Pipeline, timeline: Timeline, cfg: SlidingConfig) -> torch.Tensor:
    """The video (3, frames, H, W) in [-1, 1] on the CPU."""
    z = pipe.spec.denormalize(sliding_latents(pipe, timeline, cfg))
    return finished(pipe.vae.decode_chunked(z, chunk_latents=4, num_frames=cfg.frames)[0])


@dataclass(frozen=True)
class HierarchicalConfig(LongVideo):
    image_scale: float | None = None  # None: generate's default for what is given
    segment: int = 16  # frames from one keyframe to the next (a window of segment + 1)

    def __post_init__(self):
        super().__post_init__()
        if self.segment < 4 or self.segment % 4:
            raise InputError(
                f"a segment is a positive multiple of 4 frames (4k + 1 per window), got {self.segment}"
            )


@torch.no_grad()
def hierarchical(pipe: Pipeline, timeline: Timeline, cfg: HierarchicalConfig) -> torch.Tensor:
    """The video (3, frames, H, W) in [-1, 1] on the CPU: keyframes every `segment` frames, then the
    frames between them."""
    timeline.check_length(cfg.frames / cfg.fps)
    n = max(1, math.ceil((cfg.frames - 1) / cfg.segment))
    prompts = [timeline.prompt_at(i * cfg.segment / cfg.fps) for i in range(n)]
    gen = GenerateConfig(
        frames=cfg.segment + 1, height=cfg.height, width=cfg.width, steps=cfg.steps,
        text_scale=cfg.text_scale, image_scale=cfg.image_scale, seed=cfg.seed,
    )  # fmt: skip
    # 1. Keyframes: the ends of a text-to-video clip, then one image-to-video hop per segment.
    first = generate(pipe, prompts[:1], gen)[0]
    keys = [first[:, 0], first[:, -1]]
    for i in range(1, n):
        hop = generate(
            pipe,
            prompts[i : i + 1],
            replace(gen, seed=cfg.seed + i),
            conditions=[ImageCondition(keys[-1], 0)],
        )
        keys.append(hop[0, :, -1])
    # 2. In-betweens: every segment at once, its first and last frame given.
    pairs = [[ImageCondition(keys[i], 0), ImageCondition(keys[i + 1], cfg.segment)] for i in range(n)]
    segments = generate(pipe, prompts, replace(gen, seed=cfg.seed + n), conditions=pairs)
    video = torch.cat([segments[0], *[s[:, 1:] for s in segments[1:]]], dim=1)
    return video[:, : cfg.frames]
