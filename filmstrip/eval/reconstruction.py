"""How well an autoencoder reconstructs held-out clips: PSNR, SSIM, flicker, token usage.

`reconstruct` streams a clip of any length through the model chunk by chunk (the causal
models allow it), so a long or large video never has to fit through the network at once.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from filmstrip.errors import InputError
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
    overlapping, if `tile`); returns the reconstruction clamped to [-1, 1], same shape."""
    device = next(model.parameters()).device
    x = x_bcthw.to(device, torch.float32)
    z = model.encode_chunked(x, chunk_frames)
    chunk_latents = max(1, chunk_frames // model.cfg.temporal_factor)
    if tile:
        return model.decode_tiled(z, tile, tile // 4, chunk_latents, num_frames=x.shape[2]).clamp(-1, 1)
    return model.decode_chunked(z, chunk_latents, num_frames=x.shape[2]).clamp(-1, 1)


@torch.no_grad()
def evaluate(
    model: VideoVAE, dataset: Dataset, num_clips: int = 64, batch_size: int = 8, progress: bool = True
) -> dict[str, float]:
    """Mean and standard deviation over `num_clips` clips of PSNR (dB), SSIM, mean absolute
    error and flicker (both in grey levels), plus codebook usage for an FSQ model."""
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
