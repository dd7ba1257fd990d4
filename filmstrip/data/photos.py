"""Camera-motion clips from still photographs: a virtual camera pans, zooms and rolls across
a photo, which gives natural texture and global motion in any quantity from a few dozen
pictures (real camera footage is scarce offline; photographs are not).

`photos:DIR` is a procedural dataset like `shapes`: item i is a pure function of (seed, i)
(and of the epoch, when drawn with one), so every epoch sees new paths over the same photos.
Each clip picks a photo, a view size (so a view covers from about an eighth to most of the
picture's short side), a start inside the picture, and constant rates of pan (up to
`max_pan` of the view's width per frame), zoom (log scale per frame) and roll; the whole
path is kept inside the picture. A fifth of the clips hold the camera still: stillness is
real footage's commonest motion. Frames are sampled with one bilinear warp per frame from
the photo box-filtered down to about the view's scale, so nothing aliases.

Photos whose index is a multiple of 10 are the test split; the rest train. What the clips
lack against real footage: parallax, motion blur, moving objects and lighting changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from filmstrip.data.join import Index, split_index
from filmstrip.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class PhotoClipsConfig:
    root: str
    num_frames: int = 17
    height: int = 128
    width: int = 128
    num_clips: int = 20_000  # the length of an epoch; paths are drawn anew each epoch
    seed: int = 0
    split: str = "train"
    fps: float = 8.0
    max_pan: float = 0.04  # of the view's width per frame
    max_zoom: float = 0.015  # log scale per frame
    max_roll: float = 0.6  # degrees per frame
    still: float = 0.2  # share of clips with a still camera

    def __post_init__(self):
        if self.split not in ("train", "test"):
            raise InputError(f"split must be 'train' or 'test', got {self.split!r}")
        if self.num_frames < 1 or self.height < 8 or self.width < 8:
            raise InputError("photo clips need at least one frame of at least 8 x 8 pixels")


def list_photos(root: str | Path, split: str = "train") -> list[Path]:
    """The split's photos under `root` (searched recursively, sorted by path)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: no such folder of photos")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    chosen = [p for k, p in enumerate(paths) if (k % 10 == 0) == (split == "test")]
    if not chosen:
        raise InputError(
            f"{root}: no {split} photos ({len(paths)} images found; every tenth is held out for test)"
        )
    return chosen


@lru_cache(maxsize=8)
def _load(path: Path) -> torch.Tensor:
    """(3, H, W) float in [0, 1]."""
    try:
        with Image.open(path) as img:
            array = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    except Exception as e:  # PIL raises many kinds for a bad file
        raise InputError(f"{path}: not a readable image ({e})") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def camera_path(
    rng: np.random.Generator, cfg: PhotoClipsConfig, img_h: int, img_w: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: the view's centre (T, 2) as (x, y) in image pixels, its scale (T,) in
    image pixels per output pixel, and its roll (T,) in radians; inside the image throughout."""
    t = np.arange(cfg.num_frames, dtype=np.float64)
    fit = min(img_h / cfg.height, img_w / cfg.width)  # the scale at which the view fills the image
    if fit < 1:
        raise InputError(f"a {img_w}x{img_h} photo is smaller than a {cfg.width}x{cfg.height} view")
    still = rng.random() < cfg.still
    for _ in range(20):
        scale0 = fit * math.exp(rng.uniform(math.log(max(1 / fit, 0.125)), math.log(0.8)))
        pan = np.zeros(2) if still else rng.uniform(-1, 1, 2) * cfg.max_pan * cfg.width * scale0
        zoom = 0.0 if still else rng.uniform(-1, 1) * cfg.max_zoom
        roll = 0.0 if still else math.radians(rng.uniform(-1, 1) * cfg.max_roll)
        scale = scale0 * np.exp(zoom * t)
        angle = roll * t
        # Half-extent of the rotated view along x and y, per frame.
        hw, hh = cfg.width * scale / 2, cfg.height * scale / 2
        ext_x = np.abs(np.cos(angle)) * hw + np.abs(np.sin(angle)) * hh
        ext_y = np.abs(np.sin(angle)) * hw + np.abs(np.cos(angle)) * hh
        travel = pan[None, :] * t[:, None]
        lo_x, hi_x = np.max(ext_x - travel[:, 0]), np.min(img_w - ext_x - travel[:, 0])
        lo_y, hi_y = np.max(ext_y - travel[:, 1]), np.min(img_h - ext_y - travel[:, 1])
        if lo_x <= hi_x and lo_y <= hi_y:
            start = np.array([rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)])
            return start[None, :] + travel, scale, angle
        still = still or rng.random() < 0.3  # a path that leaves the picture: try slower
    return np.array([[img_w / 2, img_h / 2]] * cfg.num_frames), np.full(cfg.num_frames, fit * 0.5), 0 * t


def render(
    image: torch.Tensor, centre: np.ndarray, scale: np.ndarray, angle: np.ndarray, height: int, width: int
) -> torch.Tensor:
    """Frames (3, T, height, width) in [0, 1] of `image` (3, H, W) seen by the path."""
    # Box-filter down to about the smallest scale first, so the bilinear warp never skips pixels.
    k = max(1, int(scale.min()))
    if k > 1:
        image = F.avg_pool2d(image[None], k, ceil_mode=True)[0]
    centre, scale = centre / k, scale / k
    _, img_h, img_w = image.shape
    cos, sin = np.cos(angle), np.sin(angle)
    # Output pixel offsets from the centre (normalised u in [-1, 1]) -> image pixels -> image
    # normalised coordinates, as one affine map per frame.
    theta = np.zeros((len(scale), 2, 3))
    theta[:, 0, 0] = cos * scale * width / img_w
    theta[:, 0, 1] = -sin * scale * height / img_w
    theta[:, 1, 0] = sin * scale * width / img_h
    theta[:, 1, 1] = cos * scale * height / img_h
    theta[:, 0, 2] = 2 * centre[:, 0] / img_w - 1
    theta[:, 1, 2] = 2 * centre[:, 1] / img_h - 1
    theta_t = torch.from_numpy(theta).float()
    grid = F.affine_grid(theta_t, [len(scale), 3, height, width], align_corners=False)
    frames = F.grid_sample(
        image[None].expand(len(scale), -1, -1, -1), grid, mode="bilinear", align_corners=False
    )
    return frames.clamp(0, 1).permute(1, 0, 2, 3)


class PhotoClipsDataset(Dataset):
    varies_by_epoch = True

    def __init__(self, cfg: PhotoClipsConfig):
        self.cfg = cfg
        self.paths = list_photos(cfg.root, cfg.split)

    def __len__(self) -> int:
        return self.cfg.num_clips

    def __getitem__(self, index: Index) -> dict:
        i, epoch = split_index(index)
        if not 0 <= i < len(self):
            raise IndexError(f"clip {i} out of range for {len(self)} clips")
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, 11 + (cfg.split == "test"), i, epoch or 0])
        path = self.paths[int(rng.integers(len(self.paths)))]
        image = _load(path)
        centre, scale, angle = camera_path(rng, cfg, image.shape[1], image.shape[2])
        frames = render(image, centre, scale, angle, cfg.height, cfg.width)
        return {"video": frames * 2 - 1, "caption": "", "path": str(path), "fps": cfg.fps}
