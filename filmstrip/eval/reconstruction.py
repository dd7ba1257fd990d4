"""How well an autoencoder reconstructs held-out clips: PSNR, SSIM, flicker, token usage.

`reconstruct` streams a clip of any length through the model chunk by chunk (the causal
models allow it), so a long or large video never has to fit through the network at once.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from tqdm import tqdm

from filmstrip.errors import InputError
from filmstrip.eval.lpips import LPIPS, lpips_video
from filmstrip.eval.metrics import flicker, psnr, ssim
from filmstrip.models.fsq import codebook_usage
from filmstrip.models.vae import VideoVAE


def crop_to_multiple(x_bcthw: torch.Tensor, multiple: int) -> torch.Tensor:
    """Centre-crop height and width down to multiples of `multiple`."""
    h, w = x_bcthw.shape[-2:]
    nh, nw = h // multiple * multiple, w // multiple * multiple
    if nh == 0 or nw == 0:
        raise InputError(
            f"a {h}x{w} video is smaller than the autoencoder's {multiple}x{multiple} compression block"
        )
    top, left = (h - nh) // 2, (w - nw) // 2
    return x_bcthw[..., top : top + nh, left : left + nw]


@torch.no_grad()
def reconstruct(
    model: VideoVAE, x_bcthw: torch.Tensor, chunk_frames: int = 16, tile: int = 0
) -> torch.Tensor:
    """Encode and decode in chunks (and in spatial tiles of `tile` latent pixels, a quarter
    overlapping, if `tile`) on the model's device; returns the reconstruction clamped to
    [-1, 1], same shape, on the device `x_bcthw` came on (where it is compared with it)."""
    device = next(model.parameters()).device
    x = x_bcthw.to(device, torch.float32)
    z = model.encode_chunked(x, chunk_frames)
    chunk_latents = max(1, chunk_frames // model.cfg.temporal_factor)
    if tile:
        recon = model.decode_tiled(z, tile, tile // 4, chunk_latents, num_frames=x.shape[2])
    else:
        recon = model.decode_chunked(z, chunk_latents, num_frames=x.shape[2])
    return recon.clamp(-1, 1).to(x_bcthw.device)


@torch.no_grad()
def evaluate(
    model: VideoVAE, dataset: Dataset, num_clips: int = 64, batch_size: int = 8, progress: bool = True
) -> dict[str, float]:
    """Mean and standard deviation over `num_clips` clips of PSNR (dB), SSIM, mean absolute
    error and flicker (both in grey levels), plus codebook usage for an FSQ model."""
    if num_clips < 1 or batch_size < 1:
        raise InputError(f"num_clips and batch_size must be at least 1, got {num_clips} and {batch_size}")
    if len(dataset) == 0:
        raise InputError("the dataset has no clips to evaluate on")
    model.eval()
    device = next(model.parameters()).device
    num_clips = min(num_clips, len(dataset))
    per_clip: dict[str, list[float]] = {"psnr": [], "ssim": [], "flicker": [], "abs_error": []}
    codes = []
    for start in tqdm(range(0, num_clips, batch_size), desc="evaluating", disable=not progress, leave=False):
        videos = [dataset[i]["video"] for i in range(start, min(start + batch_size, num_clips))]
        # Folder clips come in several bucket sizes: batch only clips that stack.
        groups = [torch.stack(videos)] if len({v.shape for v in videos}) == 1 else [v[None] for v in videos]
        for x in groups:
            x = crop_to_multiple(x.to(device), model.cfg.spatial_factor)
            recon = model.decode(model.encode(x), x.shape[2]).clamp(-1, 1)
            per_clip["psnr"] += psnr(recon, x).tolist()
            per_clip["ssim"] += ssim(recon, x).tolist()
            per_clip["abs_error"] += ((recon - x).abs().flatten(1).mean(1) * 255 / 2).tolist()
            if x.shape[2] > 1:
                per_clip["flicker"] += flicker(recon, x).tolist()
            if model.fsq is not None:
                codes.append(model.codes(x).cpu())
    out: dict[str, float] = {"clips": float(num_clips)}
    for name, values in per_clip.items():
        if values:
            t = torch.tensor(values, dtype=torch.float64)
            out[name] = float(t.mean())
            out[f"{name}_std"] = float(t.std()) if len(values) > 1 else 0.0
    if codes:
        usage = codebook_usage(torch.cat([c.flatten() for c in codes]), model.fsq.codebook_size)
        out.update({f"codes_{k}": v for k, v in usage.items()})
        out["bits_per_token"] = math.log2(model.fsq.codebook_size)
    out["compression"] = model.cfg.compression
    return out


def bicubic_round_trip(x_bcthw: torch.Tensor, factor: int) -> torch.Tensor:
    """Each frame downscaled by `factor` (antialiased bicubic) and upscaled back: the codec an
    autoencoder must beat. By 8 it keeps 3/64 of the values, about as many as a 4x8x8 latent
    of 16 channels (16/256); by 4 it keeps 3/16."""
    b, c, t, h, w = x_bcthw.shape
    frames = x_bcthw.transpose(1, 2).reshape(b * t, c, h, w).float()
    small = F.interpolate(
        frames, size=(max(1, h // factor), max(1, w // factor)), mode="bicubic", antialias=True
    )
    back = F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False).clamp(-1, 1)
    return back.reshape(b, t, c, h, w).transpose(1, 2)


@torch.no_grad()
def compare(
    x_bcthw: torch.Tensor, models: dict[str, VideoVAE], perceptual: LPIPS | None = None
) -> dict[str, dict[str, float]]:
    """PSNR, SSIM, flicker (and ST-LPIPS if `perceptual`) of each model's reconstruction of
    one clip, beside the bicubic round trips by 8 and by 4."""
    recons = {name: reconstruct(model, x_bcthw) for name, model in models.items()}
    recons["bicubic /8"] = bicubic_round_trip(x_bcthw, 8)
    recons["bicubic /4"] = bicubic_round_trip(x_bcthw, 4)
    rows = {}
    for name, recon in recons.items():
        row = {"psnr": float(psnr(recon, x_bcthw)), "ssim": float(ssim(recon, x_bcthw))}
        if x_bcthw.shape[2] > 1:
            row["flicker"] = float(flicker(recon, x_bcthw))
        if perceptual is not None:
            row["lpips"] = float(lpips_video(perceptual, recon, x_bcthw).mean())
        rows[name] = row
    return rows
