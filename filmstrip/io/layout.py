"""Conversions between the project's one tensor layout and what codecs and images use.

Inside filmstrip a clip is a float tensor `(C, T, H, W)` with values in [-1, 1] (a batch adds
a leading B). Codecs and OpenCV want uint8 `(T, H, W, C)`. These two functions are the only
place that crosses between them, so the value range convention lives in one spot;
`to_uint8` and `from_uint8` are the same value conversion for tensors that keep their layout
(batches of clips held as uint8 to hash, cache or show). `check_pixels` refuses, in one
sentence, pixels given to the library in another convention.
"""

from __future__ import annotations

import numpy as np
import torch

from filmstrip.errors import InputError

ArrayLike = torch.Tensor | np.ndarray


def check_pixels(pixels: torch.Tensor, what: str) -> None:
    """Float pixels in [-1, 1], finite. uint8 or 0..255 frames would otherwise be drawn (or
    encoded), wrongly, without a word."""
    if not pixels.is_floating_point():
        raise InputError(
            f"{what} takes float pixels in [-1, 1], got {pixels.dtype}: convert with "
            "filmstrip.io.layout.from_uint8, or read with read_video(path, dtype=torch.float32)"
        )
    if not torch.isfinite(pixels).all():
        raise InputError(f"{what} has NaN or infinite pixels")
    low, high = float(pixels.amin()), float(pixels.amax())
    if low < -1.01 or high > 1.01:  # a resize's overshoot, not another convention
        raise InputError(f"{what}'s pixels are in [-1, 1], got {low:g} to {high:g}")


def to_uint8(video: torch.Tensor) -> torch.Tensor:
    """Float in [-1, 1] -> uint8 0..255 (clamped, rounded), any layout."""
    return ((video.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def from_uint8(video: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> float32 in [-1, 1], any layout."""
    return video.float() / 127.5 - 1


def to_uint8_thwc(video_cthw: ArrayLike) -> np.ndarray:
    """(C, T, H, W) uint8, or float in [-1, 1] -> contiguous uint8 (T, H, W, 3).

    One channel is repeated to three (grey video); floats are clamped before rounding.
    """
    if isinstance(video_cthw, torch.Tensor):
        video_cthw = video_cthw.detach().cpu()
        if video_cthw.is_floating_point():
            video_cthw = to_uint8(video_cthw)
        video_cthw = video_cthw.numpy()
    elif np.issubdtype(video_cthw.dtype, np.floating):
        video_cthw = np.round((np.clip(video_cthw, -1, 1) + 1) * 127.5).astype(np.uint8)
    if video_cthw.ndim != 4:
        raise InputError(f"expected a video of shape (C, T, H, W), got shape {tuple(video_cthw.shape)}")
    if video_cthw.dtype != np.uint8:
        raise InputError(f"expected uint8 or float video, got dtype {video_cthw.dtype}")
    channels = video_cthw.shape[0]
    if channels == 1:
        video_cthw = np.repeat(video_cthw, 3, axis=0)
    elif channels != 3:
        raise InputError(f"expected 1 or 3 channels in (C, T, H, W), got C={channels}")
    return np.ascontiguousarray(video_cthw.transpose(1, 2, 3, 0))


def to_float_cthw(video_thwc: np.ndarray | torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 (T, H, W, C) -> float (C, T, H, W) in [-1, 1], contiguous."""
    video = torch.as_tensor(video_thwc)
    out = torch.empty(
        (video.shape[3], video.shape[0], video.shape[1], video.shape[2]), dtype=dtype, device=video.device
    )
    out.copy_(video.permute(3, 0, 1, 2))  # one pass: the layout change and the cast together
    return out.div_(127.5).sub_(1.0)
