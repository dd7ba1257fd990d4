"""Clean-frame conditions around a model call: the one place they meet the model.

Image, keyframe and video conditions give the model clean latents (noise level 0) at known
moments of the clip (models/conditioning.py). Two ways in, chosen by where the frame is:

* **In place**, for the first latent frame or a prefix of them. The causal VAE encodes the
  first 4k + 1 frames of a clip exactly as it encodes them inside the whole clip, so these
  latents *are* the clip's own first k + 1 latent frames. The sampler holds them in its state
  with their schedule column at 0 (pipelines/denoise.place_frames); training sets x and t the
  same way. Nothing is added here, except for a guidance level that must not see them.
* **Appended**, for a keyframe at any other moment. A later latent frame stands for four
  pixel frames and its latent depends on the frames before it, so a single image has no
  exact latent there. Encoded alone (as the VAE encodes a first frame) it is exact as an
  image; it goes after the clip's frames as an extra latent frame at t = 0, with the time
  position of the moment it shows (pixel frame p sits at p / 4 in latent frames), which RoPE
  and the frame embedding read. Attention carries it to the frames around that moment. The
  model's prediction for it is dropped. This is LTX-Video's "conditioning item"; it costs one
  latent frame of tokens per keyframe. Per-frame condition vectors (motion, camera) give it
  the value of the clip's frame nearest its moment.

`with_frames` serves training and sampling alike, so the two see the same inputs.
"""

from __future__ import annotations

import torch

from filmstrip.diffusion.flow import add_noise
from filmstrip.models.conditioning import Conditioning


def pixel_to_latent_time(frame: int | float, temporal_factor: int) -> float:
    """The time position, in latent frames, of pixel frame `frame` of a causal VAE's clip:
    frame 0 is latent frame 0, and latent frame k ends at pixel frame k * factor."""
    return float(frame) / temporal_factor


def latent_frame_mean(values_bt: torch.Tensor, latent_frames: int) -> torch.Tensor:
    """(B, T, ...) per pixel frame -> (B, T', ...) per latent frame of a causal VAE: frame 0
    alone, then the mean of each group of (T - 1) / (T' - 1) frames."""
    if latent_frames == 1:
        return values_bt[:, :1]
    group = (values_bt.shape[1] - 1) // (latent_frames - 1)
    rest = values_bt[:, 1 : 1 + group * (latent_frames - 1)]
    rest = rest.unflatten(1, (latent_frames - 1, group)).mean(dim=2)
    return torch.cat([values_bt[:, :1], rest], dim=1)


def with_frames(model, x: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
    """model(x, t, cond) with `cond`'s clean-frame conditions applied. x: (B, C, T, H, W);
    t: (B, T). Returns the (B, C, T, H, W) prediction for the clip's own frames."""
    if not cond.has_frames:
        return model(x, t, cond)
    frames = x.shape[2]
    # 1. In-place frames this level must not see: shown as an unconditioned frame would be,
    #    on the straight path from their noise to their clean latent, at the level of the
    #    row's noisiest frame (the level the frame would have without its condition).
    if cond.unseen is not None:
        level = t.amax(dim=1, keepdim=True).expand_as(t)
        view = add_noise(cond.unseen_latents.to(x.dtype), cond.unseen_noise.to(x.dtype), level)
        x = torch.where(cond.unseen[:, None, :, None, None], view, x)
        t = torch.where(cond.unseen, level, t)
    # 2. Keyframes after the clip, clean, at their own time positions.
    if cond.keyframes is not None:
        k = cond.keyframes.shape[2]
        x = torch.cat([x, cond.keyframes.to(x.dtype)], dim=2)
        t = torch.cat([t, t.new_zeros(t.shape[0], k)], dim=1)
        own = torch.arange(frames, device=x.device, dtype=torch.float32)
        times = torch.cat([own, cond.key_times.to(x.device, torch.float32)])
        nearest = cond.key_times.round().long().clamp(0, frames - 1).to(x.device)
        bare = cond.without_frames()
        bare.vectors = {n: torch.cat([v, v[:, nearest]], dim=1) for n, v in bare.vectors.items()}
        return model(x, t, bare, times=times)[:, :, :frames]
    return model(x, t, cond.without_frames())
