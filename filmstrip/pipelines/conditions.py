"""Image and video conditions: given frames of the clip to generate, as typed items.

    ImageCondition(image, frame_index=0)         image to video (frame 0), a keyframe (any frame)
    VideoCondition(video, start_frame=0)         a clip's frames from `start_frame` on (extension)

`prepare_frames` turns them into what the denoising core takes (diffusion/frames.py):

* The given frames that form a prefix of 4k + 1 frames (frame 0, or frames 0..4k) are encoded
  together, and the causal VAE gives exactly the clip's own first k + 1 latent frames: they go
  **in place**, held clean in the sampler's state (`place_frames`). `strength` below 1 starts
  such a frame partly noised, at level 1 - strength, and lets the model redraw it along a
  schedule scaled by that level (as LTX-Video's conditioning strength does).
* Every other given frame is encoded alone and **appended** as a keyframe at the time
  position of its frame, always at full strength (the model was trained on clean keyframes).

Frames of another size are resized to cover the clip and centre-cropped, as the data
pipeline does, with a warning. The prepared pair is (null, real) for guidance: the null level
sees no keyframes and sees the in-place frames as unconditioned frames (noised to the level
of the rest), so `image_scale` pushes from "no frames given" to "frames given".
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange

from filmstrip.data.buckets import Bucket, center_crop, cover_size
from filmstrip.diffusion.frames import pixel_to_latent_time
from filmstrip.errors import FilmstripWarning, InputError
from filmstrip.io.layout import check_pixels
from filmstrip.models.conditioning import Conditioning
from filmstrip.pipelines.denoise import Pipeline, encode
from filmstrip.pipelines.prepare import Pair


@dataclass(frozen=True)
class ImageCondition:
    """One frame of the clip to generate: image (3, H, W) in [-1, 1] at `frame_index`
    (negative counts from the end: -1 is the last frame)."""

    image: torch.Tensor
    frame_index: int = 0
    strength: float = 1.0

    def __post_init__(self):
        if self.image.ndim != 3 or self.image.shape[0] != 3:
            raise InputError(f"an image condition is (3, H, W), got {tuple(self.image.shape)}")
        check_pixels(self.image, "an image condition")
        _check_strength(self.strength)


@dataclass(frozen=True)
class VideoCondition:
    """Consecutive frames of the clip to generate: video (3, T, H, W) in [-1, 1], its first
    frame at `start_frame`."""

    video: torch.Tensor
    start_frame: int = 0
    strength: float = 1.0

    def __post_init__(self):
        if self.video.ndim != 4 or self.video.shape[0] != 3:
            raise InputError(f"a video condition is (3, T, H, W), got {tuple(self.video.shape)}")
        if self.video.shape[1] < 1:
            raise InputError("a video condition needs at least one frame")
        check_pixels(self.video, "a video condition")
        _check_strength(self.strength)


Condition = ImageCondition | VideoCondition


def _check_strength(strength: float) -> None:
    if not (math.isfinite(strength) and 0.0 <= strength <= 1.0):
        raise InputError(f"a condition's strength is in [0, 1] (1: exactly this frame), got {strength}")


@dataclass
class FramePlan:
    """Prepared frame conditions: latents to hold in place {latent frame: (latent (C, H', W'),
    strength)} and the (null, real) guidance pair (keyframes; what the null must not see)."""

    in_place: dict[int, tuple[torch.Tensor, float]]
    pair: Pair


def given_frames(conditions: Sequence[Condition], frames: int) -> dict[int, tuple[torch.Tensor, float]]:
    """{pixel frame: (image (3, H, W), strength)} of all conditions, checked: inside a clip of
    `frames` frames and at most one condition per frame."""
    given: dict[int, tuple[torch.Tensor, float]] = {}

    def add(index: int, image: torch.Tensor, strength: float, what: str) -> None:
        k = index + frames if index < 0 else index
        if not 0 <= k < frames:
            raise InputError(
                f"{what} is at frame {index}, outside a clip of {frames} frames (0..{frames - 1})"
            )
        if k in given:
            raise InputError(f"two conditions give frame {k}: give each frame once")
        given[k] = (image, strength)

    for c in conditions:
        if isinstance(c, ImageCondition):
            add(c.frame_index, c.image, c.strength, "an image condition")
        elif isinstance(c, VideoCondition):
            start = c.start_frame + frames if c.start_frame < 0 else c.start_frame
            if start + c.video.shape[1] > frames:
                raise InputError(
                    f"a video condition of {c.video.shape[1]} frames from frame {c.start_frame} runs past "
                    f"the end of a clip of {frames} frames"
                )
            for j in range(c.video.shape[1]):
                add(start + j, c.video[:, j], c.strength, "a video condition")
        else:
            raise InputError(f"unknown condition {type(c).__name__}: use ImageCondition or VideoCondition")
    return given


def fit_frames(video: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(..., 3, H, W) frames resized to cover height x width (aspect kept) and centre-cropped,
    as the data pipeline does; warns when that changes them."""
    h, w = video.shape[-2:]
    if (h, w) == (height, width):
        return video
    warnings.warn(
        f"a {w}x{h} condition frame was resized and centre-cropped to {width}x{height}",
        FilmstripWarning,
        stacklevel=3,
    )
    bucket = Bucket(height, width)
    size = cover_size(h, w, bucket)
    flat = video.reshape(-1, 3, h, w).float()
    resized = F.interpolate(flat, size=size, mode="bilinear", antialias=True, align_corners=False)
    return center_crop(resized, bucket).reshape(*video.shape[:-2], height, width).clamp(-1, 1)


@torch.no_grad()
def prepare_frames(
    pipe: Pipeline,
    conditions: Sequence[Condition] | Sequence[Sequence[Condition]],
    frames: int,
    noise: torch.Tensor,
) -> FramePlan:
    """Conditions -> a FramePlan for a clip of `frames` frames whose sampling starts from
    `noise` (B, C, T', H', W'). `conditions` is one list for every row of the batch, or one
    list per row; rows may give different images but must give the same frames (one batch
    shares its keyframe positions and strengths)."""
    b, _, latent_frames, h, w = noise.shape
    per_row = bool(conditions) and not isinstance(conditions[0], (ImageCondition, VideoCondition))
    if per_row and len(conditions) != b:
        raise InputError(f"{len(conditions)} lists of conditions for a batch of {b}: give one per row")
    rows = [given_frames(c, frames) for c in conditions] if per_row else [given_frames(conditions, frames)]
    given = rows[0]
    plan_of = {p: s for p, (_, s) in given.items()}
    if any({p: s for p, (_, s) in r.items()} != plan_of for r in rows[1:]):
        raise InputError("every row of a batch must give the same frames at the same strengths")
    f, factor = pipe.vae.cfg.spatial_factor, pipe.vae.cfg.temporal_factor

    def pixels(indices) -> torch.Tensor:  # (rows, 3, len(indices), H, W)
        return torch.stack(
            [torch.stack([fit_frames(r[p][0], h * f, w * f) for p in indices], dim=1) for r in rows]
        )

    # 1. The longest prefix of 4k + 1 given frames goes in place (encoded together).
    prefix = 0
    while prefix + factor <= frames - 1 and all(p in given for p in range(prefix + 1, prefix + factor + 1)):
        prefix += factor
    in_place: dict[int, tuple[torch.Tensor, float]] = {}
    if 0 in given:
        z = encode(pipe, pixels(range(prefix + 1)))  # (rows, C, k + 1, H', W')
        for k in range(z.shape[2]):
            # A latent frame is as given as the weakest of the pixel frames it holds.
            covered = range(max(0, (k - 1) * factor + 1), k * factor + 1)
            in_place[k] = (z[:, :, k].expand(b, -1, -1, -1), min(plan_of[p] for p in covered))
    else:
        prefix = -1
    # 2. Every other given frame: a keyframe, encoded alone, at its own time position.
    keyed = sorted(p for p in given if p > prefix)
    for p in keyed:
        if plan_of[p] != 1.0:
            raise InputError(
                f"frame {p} is given with strength {plan_of[p]}: only frames from the start of the clip "
                "(frame 0 or a prefix of 4k + 1 frames) take a strength below 1"
            )
    real = Conditioning()
    if keyed:
        images = pixels(keyed)  # (rows, 3, K, H, W)
        alone = rearrange(images, "r c k h w -> (r k) c 1 h w")
        z = rearrange(encode(pipe, alone), "(r k) c 1 h w -> r c k h w", k=len(keyed))
        times = torch.tensor([pixel_to_latent_time(p, factor) for p in keyed])
        real = Conditioning(keyframes=z.expand(b, -1, -1, -1, -1).contiguous(), key_times=times)
    null = Conditioning()
    if in_place:
        unseen = torch.zeros(b, latent_frames, dtype=torch.bool)
        latents = torch.zeros_like(noise)
        for k, (latent, _) in in_place.items():
            unseen[:, k] = True
            latents[:, :, k] = latent
        null = Conditioning(unseen=unseen, unseen_latents=latents, unseen_noise=noise.clone())
    return FramePlan(in_place, (null, real))
