"""Streaming a causal DiT: one latent chunk at a time, the past in a KV cache, frames out as
they are made, at a constant cost per frame however long the video runs.

    pipe = load_pipeline("t2v_causal")
    for frames in stream(pipe, parse_timeline(["a red circle moves right"]), StreamConfig(seconds=60)):
        writer.write(frames)                       # (3, t, H, W) in [-1, 1]

Per chunk of `chunk` latent frames (pixel frames 4k - 3 .. 4k for latent frame k >= 1), by
diffusion/forcing.rollout:
1. Draw its noise and denoise it over `steps`, every call reading the cache (the window of
   past frames and the sinks) under the prompt in force at that moment of the timeline.
2. Write the finished chunk into the cache: one more forward pass at noise level
   `context_noise` (0: the clean latents; a little noise makes the model lean less on
   details of its own past, the noise-augmented context of GameNGen and diffusion forcing).
3. Decode it with the causal VAE's streaming decoder, which keeps its own small cache.

Guidance runs its levels as one batch, so the cache holds one row per level: the
unconditional branch remembers its own past.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from filmstrip.diffusion.forcing import RolloutConfig, rollout
from filmstrip.errors import InputError
from filmstrip.models.conditioning import Conditioning
from filmstrip.models.kv_cache import CacheConfig, KVCache
from filmstrip.pipelines.denoise import Pipeline, finished, latent_shape
from filmstrip.pipelines.prepare import prepare_text, stack_levels, warn_unknown_words
from filmstrip.pipelines.timeline import LongVideo, Timeline


@dataclass(frozen=True)
class StreamConfig(LongVideo):
    steps: int = 8
    chunk: int = 1  # latent frames made per rollout step
    cache: CacheConfig = CacheConfig()
    context_noise: float = 0.0  # noise level at which finished frames enter the cache
    # Diffusion forcing's pyramid inside a chunk of several latent frames: how far (a share of
    # the run) its last frame trails its first (diffusion/sampling.schedule). 0: one level.
    lag: float = 0.0
    solver: str = "euler"

    def __post_init__(self):
        super().__post_init__()
        if self.chunk < 1:
            raise InputError(f"need at least one latent frame per chunk, got {self.chunk}")
        if not 0.0 <= self.context_noise < 1.0:
            raise InputError(f"context_noise is a noise level in [0, 1), got {self.context_noise}")
        if not (math.isfinite(self.lag) and self.lag >= 0):
            raise InputError(f"the pyramid lag is a share of the run, at least 0; got {self.lag}")


def chunk_seconds(first_latent: int, temporal_factor: int, fps: float) -> float:
    """The moment latent frame k starts to show: pixel frame 0 for k = 0, else 4(k - 1) + 1."""
    return (0 if first_latent == 0 else temporal_factor * (first_latent - 1) + 1) / fps


def check_streamable(pipe: Pipeline) -> None:
    if not pipe.dit.cfg.causal:
        raise InputError(
            "streaming needs a causal model (DiTConfig causal=True), such as the bundled t2v_causal"
        )


@torch.no_grad()
def stream_latents(pipe: Pipeline, timeline: Timeline, cfg: StreamConfig) -> Iterator[torch.Tensor]:
    """Latent chunks (1, C, n, H', W'), normalised, as the causal model makes them."""
    check_streamable(pipe)
    timeline.check_length(cfg.frames / cfg.fps)
    # Memory holds the cache's window and sinks and the chunk being made, not the whole video
    # (window 0 keeps every frame).
    held = cfg.cache.window + cfg.cache.sink + cfg.chunk if cfg.cache.window else None
    shape = latent_shape(pipe, 1, cfg.frames, cfg.height, cfg.width, held)
    cache = KVCache.for_model(pipe.dit, cfg.cache)
    g = torch.Generator().manual_seed(cfg.seed)
    tf = pipe.vae.cfg.temporal_factor
    levels_of: dict[str, list[Conditioning]] = {}

    def levels_at(index: int) -> list[Conditioning]:
        prompt = timeline.prompt_at(chunk_seconds(index, tf, cfg.fps))
        if prompt not in levels_of:
            warn_unknown_words(pipe.trained_on, [prompt])
            levels_of[prompt] = [
                lv.to(pipe.device) for lv in stack_levels([prepare_text(pipe.text, [prompt])])
            ]
        return levels_of[prompt]

    def noises() -> Iterator[torch.Tensor]:
        for start in range(0, shape[2], cfg.chunk):
            n = min(cfg.chunk, shape[2] - start)
            yield torch.randn((1, shape[1], n, *shape[3:]), generator=g).to(pipe.device)

    shift = pipe.spec.shift((cfg.chunk, *shape[3:]), pipe.dit.cfg.patch)
    run = RolloutConfig(cfg.steps, shift, cfg.lag, cfg.context_noise, cfg.solver)
    yield from rollout(pipe.denoiser, cache, levels_at, [cfg.text_scale], noises(), run, g)


@torch.no_grad()
def stream(pipe: Pipeline, timeline: Timeline, cfg: StreamConfig) -> Iterator[torch.Tensor]:
    """Pixel chunks (3, t, H, W) in [-1, 1] on the CPU: 1 frame, then 4 per latent frame,
    cfg.frames in all."""
    made = 0
    latents = (pipe.spec.denormalize(z) for z in stream_latents(pipe, timeline, cfg))
    for pixels in pipe.vae.decode_stream(latents):
        pixels = finished(pixels[0, :, : cfg.frames - made])
        made += pixels.shape[1]
        yield pixels
