"""Sampling a rectified flow: a schedule matrix, a stateless step, and guidance.

A schedule is a (steps + 1, T) matrix of noise levels, one column per latent frame, from
row 0 (the start, usually all 1) to the last row (usually all 0). Full-sequence sampling,
image conditioning (a clean frame's column stays at 0, so a step leaves it as it is),
diffusion forcing's pyramid (`schedule(..., lag)`) and chunk-by-chunk autoregression
(`autoregressive_schedule`) are just different matrices fed to the same loop. Guidance wraps the model
call (guidance.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm import tqdm

from filmstrip.diffusion.flow import shift_t
from filmstrip.errors import InputError

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x, t (B, T)) -> v


def schedule(steps: int, num_frames: int, shift: float = 1.0, lag: float = 0.0) -> torch.Tensor:
    """Uniform in t from 1 to 0, then shifted: (steps + 1, T).

    lag = 0 gives identical columns (every frame at the same noise level). lag > 0 gives a
    pyramid (diffusion forcing): frame k starts later and finishes later than frame k - 1,
    the last frame starting `lag` times the first frame's run after it, so each frame is
    denoised while the frames before it are already clearer. Needs a model trained with a
    noise level per frame (`T2VConfig.frame_noise`)."""
    if steps < 1:
        raise InputError(f"need at least one sampling step, got {steps}")
    if lag < 0:
        raise InputError(f"lag must be >= 0, got {lag}")
    progress = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)[:, None]  # (steps + 1, 1)
    if num_frames == 1:
        lag = 0.0  # nothing to trail: one frame takes the whole run
    delay = torch.linspace(0.0, 1.0, num_frames, dtype=torch.float64)[None]  # (1, T)
    own = (progress * (1 + lag) - lag * delay).clamp(0.0, 1.0)  # (steps + 1, T)
    return shift_t(1.0 - own, shift).float().expand(steps + 1, num_frames).contiguous()


def autoregressive_schedule(steps: int, num_frames: int, chunk: int = 1, shift: float = 1.0) -> torch.Tensor:
    """Chunk by chunk: (ceil(T / chunk) * steps + 1, T). Chunk c runs its `steps` from 1 to 0
    while the chunks before it sit at 0 (finished) and those after it at 1 (pure noise). A
    causal model reads nothing after a frame, so this matrix fed to `sample` gives exactly what
    a KV-cache rollout gives (pipelines/stream.py), at the cost of recomputing the past."""
    if steps < 1 or chunk < 1:
        raise InputError(f"need at least one step and one frame per chunk, got {steps} and {chunk}")
    one = shift_t(torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64), shift).float()  # (steps + 1,)
    chunks = -(-num_frames // chunk)
    rows = torch.ones(chunks * steps + 1, num_frames)
    for c in range(chunks):
        cols = slice(c * chunk, (c + 1) * chunk)
        rows[c * steps : (c + 1) * steps + 1, cols] = one[:, None]  # noise (1) before, clean after
        rows[(c + 1) * steps + 1 :, cols] = 0.0
    return rows


def step(x: torch.Tensor, v: torch.Tensor, t_from: torch.Tensor, t_to: torch.Tensor) -> torch.Tensor:
    """One Euler step of dx/dt = v from t_from to t_to, both (T,) or (B, T), per latent frame."""
    dt = (t_to - t_from).to(x.dtype)
    if dt.ndim == 1:
        dt = dt[None]
    return x + dt[:, None, :, None, None] * v


@torch.no_grad()
def sample(
    velocity: VelocityFn,
    noise: torch.Tensor,
    sched: torch.Tensor,
    solver: str = "euler",
    progress: bool = False,
) -> torch.Tensor:
    """Integrate from `noise` (the state at sched[0]) to sched[-1]. Heun averages the velocity
    at both ends of each step (two model calls; second order). Unlike diffusion in sigma,
    the flow's velocity is defined at t = 0, so the last step is corrected too."""
    if solver not in ("euler", "heun"):
        raise InputError(f"solver must be 'euler' or 'heun', got {solver!r}")
    x = noise
    b = noise.shape[0]
    for i in tqdm(range(len(sched) - 1), disable=not progress, desc="sampling", leave=False):
        t_from, t_to = sched[i].to(x.device), sched[i + 1].to(x.device)
        v = velocity(x, t_from[None].expand(b, -1))
        if solver == "heun":
            x_pred = step(x, v, t_from, t_to)
            v = 0.5 * (v + velocity(x_pred, t_to[None].expand(b, -1)))
        x = step(x, v, t_from, t_to)
    return x
