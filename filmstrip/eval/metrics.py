"""Reconstruction metrics for video: PSNR, SSIM and temporal flicker.

All take float pixels in [-1, 1] (the library's convention), shaped (B, C, T, H, W) or
(B, C, H, W), and return one value per clip (B,), so a report can show the spread and not
only the mean. SSIM is differentiable and doubles as a training loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from filmstrip.errors import InputError


def _real(x: torch.Tensor) -> torch.Tensor:
    """At least float32 (uint8 and bf16 go up; float64 stays, for reference comparisons)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _as_frames(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(B, C, T, H, W) or (B, C, H, W) -> ((B*T, C, H, W) in [0, 1], T)."""
    if x.ndim == 4:
        x = x.unsqueeze(2)
    if x.ndim != 5:
        raise InputError(f"expected (B, C, T, H, W) or (B, C, H, W), got shape {tuple(x.shape)}")
    t = x.shape[2]
    x = _real(x)
    return (rearrange(x, "b c t h w -> (b t) c h w") + 1) / 2, t


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB with a [0, 1] peak, over all frames of each clip: (B,).
    Identical clips give +inf."""
    if x.shape != y.shape:
        raise InputError(f"shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    mse = ((_real(x) - _real(y)) / 2).square().flatten(1).mean(1)
    return -10 * torch.log10(mse)


def _gaussian_window(sigma: float, radius: int, device, dtype) -> torch.Tensor:
    offsets = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    g = torch.exp(-(offsets**2) / (2 * sigma**2))
    return g / g.sum()


def ssim_map(x: torch.Tensor, y: torch.Tensor, sigma: float = 1.5, truncate: float = 3.5) -> torch.Tensor:
    """Per-pixel SSIM (Wang et al., 2004) with a Gaussian window, on (N, C, H, W) in [0, 1].
    Only positions where the whole window fits are returned, which is what scikit-image's
    `structural_similarity(gaussian_weights=True, use_sample_covariance=False)` averages."""
    radius = int(truncate * sigma + 0.5)
    n, c, h, w = x.shape
    if torch.is_autocast_enabled(x.device.type):
        # Variances are differences of nearly equal means; in bf16 they cancel to noise.
        with torch.autocast(x.device.type, enabled=False):
            return ssim_map(x.float(), y.float(), sigma, truncate)
    if h < 2 * radius + 1 or w < 2 * radius + 1:
        raise InputError(f"SSIM needs frames of at least {2 * radius + 1}x{2 * radius + 1}, got {h}x{w}")
    g = _gaussian_window(sigma, radius, x.device, x.dtype)
    gh = g.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    gw = g.view(1, 1, 1, -1).expand(c, 1, 1, -1)

    def blur(v: torch.Tensor) -> torch.Tensor:  # separable, valid region only
        return F.conv2d(F.conv2d(v, gh, groups=c), gw, groups=c)

    c1, c2 = 0.01**2, 0.03**2
    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean SSIM over all frames and channels of each clip: (B,)."""
    if x.shape != y.shape:
        raise InputError(f"shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    fx, t = _as_frames(x)
    fy, _ = _as_frames(y)
    per_frame = ssim_map(fx, fy).flatten(1).mean(1)
    return per_frame.view(-1, t).mean(1)


def flicker(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Temporal flicker of a reconstruction, in 8-bit grey levels: the mean over pixels and
    frame pairs of |(r[t+1] - r[t]) - (x[t+1] - x[t])|. Zero when the reconstruction changes
    from frame to frame exactly as the input does, whatever its per-frame error; a per-frame
    codec whose errors jump between frames scores high even on a still shot. (B,)"""
    if recon.shape != target.shape or recon.ndim != 5:
        raise InputError(
            f"flicker needs two (B, C, T, H, W) clips of equal shape, got {tuple(recon.shape)} "
            f"and {tuple(target.shape)}"
        )
    if recon.shape[2] < 2:
        raise InputError("flicker needs at least two frames")
    d_recon = _real(recon).diff(dim=2)
    d_target = _real(target).diff(dim=2)
    return (d_recon - d_target).abs().flatten(1).mean(1) * 255 / 2
