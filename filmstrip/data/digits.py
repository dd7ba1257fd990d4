"""`digits`: Moving-digits clips (the Moving MNIST recipe) from real handwritten digits.

The digits are the 1,797 8x8 scans that scikit-learn bundles (shipped here as
assets/digits.npz, see assets/README.md), upscaled smoothly and moved with constant velocity,
bouncing off the walls; overlapping digits combine by maximum, as in Moving MNIST. Every
fifth scan is held out for the "test" split, so test clips show handwriting never trained on.
Clip i is a pure function of (seed, split, i).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import cv2
import numpy as np
from torch.utils.data import Dataset

from filmstrip.data.motion import DIRECTIONS, bouncing_path, describe_motion, join_clauses
from filmstrip.errors import InputError
from filmstrip.io.layout import to_float_cthw

_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass(frozen=True)
class DigitsConfig:
    num_frames: int = 16
    height: int = 64
    width: int = 64
    fps: float = 8.0
    digit_size: int = 28  # pixels, as in Moving MNIST
    min_digits: int = 1
    max_digits: int = 2
    speed: tuple[float, float] = (0.1, 0.25)  # frame widths per second
    split: str = "train"  # "train" or "test": disjoint handwriting
    num_clips: int = 10_000
    seed: int = 0

    def __post_init__(self):
        if self.split not in ("train", "test"):
            raise InputError(f"split must be 'train' or 'test', got {self.split!r}")
        if not 1 <= self.min_digits <= self.max_digits:
            raise InputError("need 1 <= min_digits <= max_digits")
        if self.digit_size > min(self.height, self.width):
            raise InputError(f"digit_size {self.digit_size} does not fit a {self.height}x{self.width} frame")


@functools.cache
def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The bundled scans: images (1797, 8, 8) float in [0, 1] and labels (1797,)."""
    with resources.files("filmstrip.data").joinpath("assets/digits.npz").open("rb") as f:
        data = np.load(f)
        return data["images"].astype(np.float32) / 16.0, data["labels"].astype(np.int64)


def _split_indices(split: str) -> np.ndarray:
    n = len(load_digits()[1])
    held_out = np.arange(n) % 5 == 0
    return np.flatnonzero(held_out if split == "test" else ~held_out)


class DigitsDataset(Dataset):
    """Clip i -> {"video": float (3, T, H, W) in [-1, 1] (grey), "caption": str, "truth": dict}."""

    def __init__(self, cfg: DigitsConfig | None = None):
        self.cfg = cfg or DigitsConfig()
        self.pool = _split_indices(self.cfg.split)

    def __len__(self) -> int:
        return self.cfg.num_clips

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(f"clip {i} out of range for a dataset of {len(self)} clips")
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, 0 if cfg.split == "train" else 1, i])
        images, labels = load_digits()
        times = np.arange(cfg.num_frames) / cfg.fps
        canvas = np.zeros((cfg.num_frames, cfg.height, cfg.width), np.float32)
        half = cfg.digit_size / 2
        moving = [d for d in DIRECTIONS if d != "still"]
        clauses, objects = [], []
        for _ in range(int(rng.integers(cfg.min_digits, cfg.max_digits + 1))):
            scan = int(rng.choice(self.pool))
            glyph = np.clip(
                cv2.resize(images[scan], (cfg.digit_size,) * 2, interpolation=cv2.INTER_CUBIC), 0, 1
            )
            direction = str(rng.choice(moving))
            dx, dy = DIRECTIONS[direction]
            speed = rng.uniform(*cfg.speed)
            xy, bounced = bouncing_path(
                (rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8)),
                (dx * speed, dy * speed * cfg.width / cfg.height),
                times,
                (half / cfg.width, 1 - half / cfg.width),
                (half / cfg.height, 1 - half / cfg.height),
            )
            xy_px = xy * np.array([cfg.width, cfg.height])
            for t, (cx, cy) in enumerate(xy_px):
                # Whole-pixel placement, as Moving MNIST: the glyph's top-left corner.
                x0, y0 = int(round(cx - half)), int(round(cy - half))
                region = canvas[t, y0 : y0 + cfg.digit_size, x0 : x0 + cfg.digit_size]
                np.maximum(region, glyph, out=region)
            label = int(labels[scan])
            name = str(label) if rng.random() < 0.7 else _NUMBER_WORDS[label]
            clauses.append(
                f"the {'digit ' if rng.random() < 0.6 else ''}{name} {describe_motion(direction, bounced, rng)}"
            )
            objects.append(
                {
                    "digit": label,
                    "scan": scan,
                    "direction": direction,
                    "bounced": bounced,
                    "positions": np.round(xy_px, 3).tolist(),
                }
            )
        frames = np.repeat(np.round(canvas * 255).astype(np.uint8)[..., None], 3, axis=-1)
        return {
            "video": to_float_cthw(frames),
            "caption": join_clauses(clauses, rng),
            "truth": {"objects": objects, "fps": cfg.fps},
        }
