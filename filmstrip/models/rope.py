"""3D rotary position embedding (RoPE) for video tokens.

Each attention head's dimension is split into three parts, one per axis (time, height,
width). Within a part, consecutive pairs of channels are rotated by an angle
`position * frequency`, with frequencies spaced geometrically as in the original RoPE. The
dot product of a rotated query at position p and a rotated key at position p' then depends
on p - p' only: attention sees relative offsets, there is no positional table, and any
T x H x W works at inference.

Positions are floats: `offset` shifts them (a streamed chunk continues where the last one
stopped) and `scale` stretches them (e.g. to sample a larger grid than the training one while
keeping the same angular range). Angles are computed in float32 even under autocast.

A forward computes its rotations once (`rotations`: unit complex numbers, one per channel
pair and position) and every attention layer applies them with one complex multiply: on a
CPU that is 2.8-3.1x faster, forward and backward, than re-deriving cos and sin and stacking
rotated halves in each layer (benchmarks/bench_dit.py, "rope").
"""

from __future__ import annotations

import torch

from filmstrip.errors import InputError


def axes_split(head_dim: int) -> tuple[int, int, int]:
    """Channels per axis (t, h, w), each even: a quarter for time, the rest shared by space."""
    if head_dim % 2 or head_dim < 6:
        raise InputError(f"3D RoPE needs an even head_dim >= 6, got {head_dim}")
    dt = max(2, head_dim // 4 // 2 * 2)
    rest = head_dim - dt
    dh = rest // 2 // 2 * 2
    return dt, dh, rest - dh


def grid_positions(
    t: int,
    h: int,
    w: int,
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0),
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0),
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Positions of a (t, h, w) token grid in "t h w" order: (t*h*w, 3) float32."""
    axes = [
        torch.arange(n, device=device, dtype=torch.float32) * s + o
        for n, o, s in zip((t, h, w), offset, scale, strict=True)
    ]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)


def rope_angles(positions: torch.Tensor, head_dim: int, theta: float = 10_000.0) -> torch.Tensor:
    """Rotation angle of every channel pair: (N, 3) positions -> (N, head_dim / 2)."""
    parts = []
    for axis, dim in enumerate(axes_split(head_dim)):
        freqs = theta ** (-torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32) / dim)
        parts.append(positions[:, axis : axis + 1].float() * freqs)
    return torch.cat(parts, dim=-1)


def rotations(angles: torch.Tensor, double: bool = False) -> torch.Tensor:
    """(N, head_dim / 2) angles -> the table `apply_rope` multiplies by: (N, head_dim / 2, 2)
    (cos, sin) pairs, i.e. e^(i angle) as real and imaginary parts; float32, or float64 for a
    float64 model."""
    angles = angles.double() if double else angles.float()
    return torch.stack([angles.cos(), angles.sin()], dim=-1)


def apply_rope(x: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """Rotate (..., N, head_dim) queries or keys by an (N, head_dim / 2, 2) table of
    `rotations`; pairs are channels (2i, 2i + 1), read as the complex number x_2i + i x_2i+1
    and multiplied by e^(i angle). Computed in float32 (float64 for a float64 x), returned in
    x's dtype."""
    wide = torch.float64 if x.dtype == torch.float64 else torch.float32
    pairs = x.to(wide).unflatten(-1, (-1, 2))
    rot = rot.to(wide)
    if torch.compiler.is_compiling():
        # Inductor generates no code for complex numbers: the same product in real arithmetic,
        # which it fuses into one loop.
        a, b, cos, sin = pairs[..., 0], pairs[..., 1], rot[..., 0], rot[..., 1]
        return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2).to(x.dtype)
    product = torch.view_as_complex(pairs.contiguous()) * torch.view_as_complex(rot)
    return torch.view_as_real(product).flatten(-2).to(x.dtype)
