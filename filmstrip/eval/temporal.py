"""Temporal quality of a clip, one number per dimension, in the spirit of VBench (Huang et al.
2024), with offline stand-ins for the networks VBench uses:

| dimension | VBench | here |
| --- | --- | --- |
| subject consistency | DINO ViT-B/16 features | Inception-v3 pool features (FID's network) |
| background consistency | CLIP ViT-B/32 features | 1 - ST-LPIPS (AlexNet) |
| motion smoothness | AMT frame interpolation | optical-flow interpolation (OpenCV DIS) |
| dynamic degree | RAFT flow | OpenCV DIS flow |
| temporal flicker | whole frame, static prompts only | pixels the flow finds still, any clip |

plus warping error (Lai et al. 2018): frame t+1 warped back onto frame t along the flow,
compared on pixels the forward-backward check finds visible in both.

Both consistencies use VBench's formula: for every frame after the first, the mean of its
similarity to the first frame and to the previous one. Scores in [0, 1] read "higher is
steadier"; warping error and flicker are in 8-bit grey levels and motion in pixels per frame.
Every number is a pure function of the pixels (OpenCV's DIS runs single-threaded here so that
it is repeatable).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from filmstrip.data.flow import flow, grey, warp
from filmstrip.errors import InputError
from filmstrip.io.layout import from_uint8, to_uint8_thwc

TOP_FRACTION = 0.05  # VBench's dynamic degree: mean of the largest 5% of flow magnitudes
DYNAMIC_PX_AT_256 = 6.0  # ... above 6 px at 256 px (scaled with the frame) counts as moving
DYNAMIC_SHARE = 0.25  # a clip is dynamic when at least this share of its frame pairs move
STILL_PX = 0.5  # flow below this (both ways) marks a pixel as still, for flicker


def frames_uint8(video) -> np.ndarray:
    """(T, H, W, 3) uint8 from a (3, T, H, W) tensor in [-1, 1] or uint8 frames."""
    frames = video if isinstance(video, np.ndarray) else to_uint8_thwc(torch.as_tensor(video))
    frames = frames.numpy() if isinstance(frames, torch.Tensor) else frames
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 3:
        raise InputError(f"temporal scores need a clip of at least 3 RGB frames, got {frames.shape}")
    return frames


def _grey(frames_thw3: np.ndarray) -> np.ndarray:
    return np.stack([grey(f) for f in frames_thw3])


def visible(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Pixels whose forward flow is undone by the backward flow where it lands (Sundaram et
    al. 2010): the rest are occluded or disoccluded."""
    back = warp(backward, forward)
    round_trip = forward + back
    return (round_trip**2).sum(-1) < 0.01 * ((forward**2).sum(-1) + (back**2).sum(-1)) + 0.5


def dynamic_degree(flows: list[np.ndarray], size: int) -> tuple[float, bool]:
    """(motion, dynamic): the mean over frame pairs of the top-5% flow magnitude, in pixels per
    frame, and whether enough pairs exceed VBench's threshold scaled to `size` (the short side)."""
    tops = []
    for f in flows:
        magnitude = np.sort(np.hypot(f[..., 0], f[..., 1]).ravel())
        tops.append(float(magnitude[-max(1, int(TOP_FRACTION * magnitude.size)) :].mean()))
    threshold = DYNAMIC_PX_AT_256 * size / 256
    return float(np.mean(tops)), float(np.mean([t > threshold for t in tops])) >= DYNAMIC_SHARE


def motion_smoothness(grey_thw: np.ndarray) -> float:
    """Each odd frame predicted from its two neighbours by flow interpolation (half-way along
    the flow from either side, averaged); 1 - mean absolute error / 255, as VBench scores it."""
    errors = []
    for k in range(1, len(grey_thw) - 1, 2):
        before, after = grey_thw[k - 1], grey_thw[k + 1]
        f, b = flow(before, after), flow(after, before)
        middle = 0.5 * (warp(before, -0.5 * f) + warp(after, -0.5 * b))
        errors.append(np.abs(middle - grey_thw[k].astype(np.float32)).mean())
    return 1.0 - float(np.mean(errors)) / 255


def warping_error(grey_thw: np.ndarray, forward: list[np.ndarray], backward: list[np.ndarray]) -> float:
    """Mean |frame t - frame t+1 warped back along the flow| over visible pixels, grey levels."""
    errors = []
    for t, (f, b) in enumerate(zip(forward, backward, strict=True)):
        diff = np.abs(grey_thw[t].astype(np.float32) - warp(grey_thw[t + 1], f))
        mask = visible(f, b)
        errors.append(diff[mask].mean() if mask.any() else 0.0)
    return float(np.mean(errors))


def still_flicker(frames_thw3: np.ndarray, forward: list[np.ndarray], backward: list[np.ndarray]) -> float:
    """Mean |frame t+1 - frame t| over pixels the flow finds still both ways, grey levels
    averaged over RGB: what changes where nothing moves."""
    changes = []
    for t, (f, b) in enumerate(zip(forward, backward, strict=True)):
        still = (np.hypot(f[..., 0], f[..., 1]) < STILL_PX) & (np.hypot(b[..., 0], b[..., 1]) < STILL_PX)
        if still.any():
            diff = np.abs(frames_thw3[t + 1].astype(np.float32) - frames_thw3[t].astype(np.float32))
            changes.append(diff[still].mean())
    return float(np.mean(changes)) if changes else 0.0


def feature_consistency(features_td: torch.Tensor) -> float:
    """VBench's consistency: mean over frames t >= 1 of (cos(f_t, f_0) + cos(f_t, f_t-1)) / 2."""
    f = torch.nn.functional.normalize(features_td.double(), dim=-1)
    to_first = (f[1:] * f[:1]).sum(-1)
    to_previous = (f[1:] * f[:-1]).sum(-1)
    return float(((to_first + to_previous) / 2).mean())


@dataclass(frozen=True)
class TemporalScores:
    motion: float  # px / frame, top 5% of the flow
    dynamic: bool
    motion_smoothness: float  # [0, 1]
    warping_error: float  # grey levels
    flicker: float  # grey levels on still pixels
    subject_consistency: float | None = None  # [0, 1], from per-frame Inception features
    background_consistency: float | None = None  # [0, 1], from ST-LPIPS between frames
    step_lpips: float | None = None  # mean ST-LPIPS from each frame to the next

    def as_dict(self) -> dict:
        return asdict(self)


def temporal_scores(video, frame_features: torch.Tensor | None = None, lpips=None) -> TemporalScores:
    """Every dimension of one clip ((3, T, H, W) in [-1, 1], or (T, H, W, 3) uint8).
    `frame_features` (T, D): per-frame features for subject consistency (the FID Inception's,
    so a report computes them once); `lpips`: an `LPIPS` model for background consistency."""
    frames = frames_uint8(video)
    grey = _grey(frames)
    forward = [flow(a, b) for a, b in zip(grey[:-1], grey[1:], strict=True)]
    backward = [flow(b, a) for a, b in zip(grey[:-1], grey[1:], strict=True)]
    motion, dynamic = dynamic_degree(forward, min(grey.shape[1:]))
    background, step_lpips = lpips_consistency(lpips, frames) if lpips is not None else (None, None)
    return TemporalScores(
        motion=motion,
        dynamic=dynamic,
        motion_smoothness=motion_smoothness(grey),
        warping_error=warping_error(grey, forward, backward),
        flicker=still_flicker(frames, forward, backward),
        subject_consistency=None if frame_features is None else feature_consistency(frame_features),
        background_consistency=background,
        step_lpips=step_lpips,
    )


def lpips_consistency(lpips, frames_thw3: np.ndarray) -> tuple[float, float]:
    """(1 - VBench's consistency formula over ST-LPIPS distances between frames, the mean
    LPIPS from each frame to the next). Each frame goes through the network once."""
    x = from_uint8(torch.from_numpy(frames_thw3).permute(0, 3, 1, 2)).to(lpips.shift.device)
    with torch.no_grad():
        f = lpips.features(x)
        to_first = lpips.distance([a[1:] for a in f], [a[:1].expand_as(a[1:]) for a in f])
        to_previous = lpips.distance([a[1:] for a in f], [a[:-1] for a in f])
    return 1.0 - float(((to_first + to_previous) / 2).mean()), float(to_previous.mean())
