"""RoPE in world coordinates: a panning, zooming camera's frames share one spatial frame.

RoPE tells attention how far apart two tokens are. Under a moving camera, the token that
shows a given spot of the world sits at another place in every frame, so "the same spot a
frame later" is a different offset each frame and has to be learned from a per-frame
vector (the `camera` condition through AdaLN: on 1,500 steps of fine-tuning, the generated
view did not follow the path at all). Moving each frame's spatial RoPE positions to where
its tokens look in the world makes that offset zero: a token finds the spot it shows in
the frame before at relative position 0, as with a still camera, and what the model knows
about still scenes carries over. It adds no weights; a still camera (or an absent camera
condition) leaves the positions unchanged, so a model trained without it is unchanged.

With the path's convention (data/camera.py: frame k looks at a window centred on
(0.5 + x_k, 0.5 + y_k) of size 1 / scale_k, in frame widths and heights), a token whose
position is p along an axis of n tokens (the grid centred at c) moves to

    c + (p - c) / scale_k + x_k * n        (in the same units as p)
"""

from __future__ import annotations

import torch

from filmstrip.data.camera import PAN_UNIT, ZOOM_UNIT


def world_positions(
    positions: torch.Tensor,
    camera_bt3: torch.Tensor,
    present: torch.Tensor,
    grid: tuple[int, int, int],
    rope_scale: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> torch.Tensor:
    """positions (N, 3) of a (T', H', W') token grid in "t h w" order; camera (B, T', 3) the
    `camera` condition per latent frame (data/camera.camera_features); present (B,) whether
    each row has one -> (B, N, 3) positions with h and w where each token looks in the world."""
    _, h, w = grid
    b = camera_bt3.shape[0]
    cam = camera_bt3.float() * present.to(torch.float32)[:, None, None]  # absent: a still camera
    x = cam[..., 0] * PAN_UNIT
    y = cam[..., 1] * PAN_UNIT
    zoom = ZOOM_UNIT ** cam[..., 2]
    per_token = lambda v: v.repeat_interleave(h * w, dim=1)  # noqa: E731  (B, T') -> (B, N)
    out = positions.float().expand(b, -1, -1).clone()
    for axis, shift, n in ((1, y, h), (2, x, w)):
        centre = positions[: h * w, axis].float().mean()
        out[..., axis] = (
            centre + (out[..., axis] - centre) / per_token(zoom) + per_token(shift) * n * rope_scale[axis]
        )
    return out
