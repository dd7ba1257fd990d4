"""Fréchet Video Distance (Unterthiner et al. 2018): the Fréchet distance (frechet.py)
between Gaussians fitted to I3D features of two sets of clips.

Clips are resampled the standard way before I3D: frames resized to 224 x 224 (bilinear,
no antialiasing), values in [-1, 1]. FVD is usually reported on 16-frame clips; longer clips
go through whole (I3D averages its logits over time), or cut to `frames`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F

from filmstrip.data.folder import VIDEO_SUFFIXES
from filmstrip.errors import InputError
from filmstrip.eval.frechet import collect_features, frechet_distance, gaussian_stats
from filmstrip.eval.i3d import I3D, INPUT_SIZE, MIN_FRAMES
from filmstrip.eval.media_folder import MediaFolder
from filmstrip.io import read_video


def fit_clip(video_bcthw: torch.Tensor, frames: int | None = None) -> torch.Tensor:
    """Clips (B, 3, T, H, W) in [-1, 1] -> I3D's input: the first `frames` frames (all if
    None), each resized to 224 x 224."""
    if video_bcthw.ndim != 5 or video_bcthw.shape[1] != 3:
        raise InputError(f"clips must be (B, 3, T, H, W), got {tuple(video_bcthw.shape)}")
    if frames is not None:
        if video_bcthw.shape[2] < frames:
            raise InputError(
                f"clips of {video_bcthw.shape[2]} frames are shorter than the {frames} asked for"
            )
        video_bcthw = video_bcthw[:, :, :frames]
    b, _, t, h, w = video_bcthw.shape
    if t < MIN_FRAMES:
        raise InputError(f"I3D needs clips of at least {MIN_FRAMES} frames, got {t}")
    if (h, w) == (INPUT_SIZE, INPUT_SIZE):
        return video_bcthw.float()
    flat = video_bcthw.float().transpose(1, 2).reshape(b * t, 3, h, w)
    flat = F.interpolate(flat, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return flat.reshape(b, t, 3, INPUT_SIZE, INPUT_SIZE).transpose(1, 2)


def i3d_features(
    model: I3D,
    batches: Iterable[torch.Tensor],
    frames: int | None = 16,
    progress: bool = False,
    total: int | None = None,
) -> torch.Tensor:
    """(N, 400) I3D logits of every clip in `batches` ((B, 3, T, H, W) in [-1, 1] each)."""
    device = next(model.parameters()).device
    return collect_features(
        batches, lambda video: model(fit_clip(video, frames).to(device)), "clip", progress, total
    )


def fvd(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """FVD between two sets of I3D features (N, 400) and (M, 400)."""
    return frechet_distance(*gaussian_stats(features_a), *gaussian_stats(features_b))


class ClipFolder(MediaFolder):
    """The clips of a folder, cut to their first `frames` frames (all if None); clips that
    cannot be read or are shorter are skipped and counted."""

    suffixes = VIDEO_SUFFIXES
    holds, noun = "clips", "video files"

    def __init__(self, root: Path | str, frames: int | None = 16, batch: int = 8):
        if frames is not None and frames < MIN_FRAMES:
            raise InputError(f"I3D needs clips of at least {MIN_FRAMES} frames; asked for {frames}")
        self.frames = frames
        super().__init__(Path(root), batch)

    def read(self, path: Path) -> torch.Tensor:
        video, _ = read_video(path, num_frames=self.frames, dtype=torch.float32)
        return video[None]  # one item: (1, 3, T, H, W)
