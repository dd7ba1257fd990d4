"""Diffusion forcing with a causal DiT: latent frames made chunk by chunk, the past in a KV cache.

A model trained with an independent noise level per latent frame (diffusion forcing, Chen et
al. 2024) and a block-causal mask can make a video of any length one chunk at a time:

    commit(model, cache, levels, scales, first_latents)        # optional: a given beginning
    for z in rollout(model, cache, levels_at, scales, noises, cfg, generator):
        ...                                                     # each chunk as it is finished

Each chunk is denoised along its own schedule while every call reads the cache (a chunk of
several frames can run diffusion forcing's pyramid, `lag`); the finished chunk is then
committed: one more forward pass, at noise level `context_noise`, writes its keys and values.
Sampling a whole clip with `autoregressive_schedule` gives the same frames (the test of
tests/test_stream.py), recomputing the past at every step instead of reading it.

The same loop serves inference (pipelines/stream.py) and training on the model's own
rollouts (train/t2v_task.py), so training sees the context inference will.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch

from filmstrip.config import require
from filmstrip.diffusion.flow import add_noise
from filmstrip.diffusion.guidance import guided
from filmstrip.diffusion.sampling import sample, schedule
from filmstrip.errors import FilmstripError, InputError
from filmstrip.models.conditioning import Conditioning
from filmstrip.models.kv_cache import KVCache


@dataclass(frozen=True)
class RolloutConfig:
    steps: int = 8
    shift: float = 1.0
    lag: float = 0.0  # pyramid within a chunk of several frames (sampling.schedule)
    context_noise: float = 0.0  # level at which finished frames enter the cache
    solver: str = "euler"

    def __post_init__(self):
        require(self, at_least={"steps": 1, "lag": 0, "context_noise": 0}, above={"shift": 0})
        if not self.context_noise < 1:
            raise InputError(f"context_noise is a noise level below 1, got {self.context_noise}")
        if self.solver not in ("euler", "heun"):
            raise InputError(f"solver must be 'euler' or 'heun', got {self.solver!r}")


@torch.no_grad()
def commit(
    model: Callable[..., torch.Tensor],
    cache: KVCache,
    levels: Sequence[Conditioning],
    scales: Sequence[float],
    z: torch.Tensor,
    level: float = 0.0,
    generator: torch.Generator | None = None,
) -> None:
    """Append finished latents z (B, C, n, H', W') to the cache, noised to `level` first.
    Every guidance level writes its own rows, as `rollout` reads them."""
    b, n = z.shape[0], z.shape[2]
    t = torch.full((b, n), level, device=z.device)
    if level:
        z = add_noise(z, torch.randn(z.shape, generator=generator).to(z.device), t)
    guided(functools.partial(model, cache=cache, write=True), levels, scales)(z, t)


@torch.no_grad()
def rollout(
    model: Callable[..., torch.Tensor],
    cache: KVCache,
    levels_at: Callable[[int], Sequence[Conditioning]],
    scales: Sequence[float],
    noises: Iterable[torch.Tensor],
    cfg: RolloutConfig,
    generator: torch.Generator | None = None,
) -> Iterator[torch.Tensor]:
    """For each noise chunk (B, C, n, H', W'): denoise it against the cache under the
    guidance levels in force at its first latent frame (`levels_at(index)`), commit it, and
    yield it. `model` takes `cache=` and `write=` (a causal DiT or a pipeline's denoiser)."""
    read = functools.partial(model, cache=cache)
    for noise in noises:
        levels = levels_at(cache.made)
        sched = schedule(cfg.steps, noise.shape[2], cfg.shift, cfg.lag)
        z = sample(guided(read, levels, scales), noise, sched, cfg.solver)
        if not torch.isfinite(z).all():
            raise FilmstripError("sampling produced NaN or Inf latents: check the options and the weights")
        commit(model, cache, levels, scales, z, cfg.context_noise, generator)
        yield z
