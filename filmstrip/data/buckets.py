"""Aspect-ratio buckets: train on videos of many shapes without squashing or heavy cropping.

A bucket is a target (H, W) of roughly constant area at one aspect ratio. Each video goes
to the bucket nearest its own aspect ratio (in log space, so 2:1 and 1:2 are equally far
from 1:1), is resized to cover the bucket with its aspect kept, and is centre-cropped. A
video whose crop would discard more than `tolerance` of the frame has no bucket and is
skipped. Batches are drawn from one bucket at a time so that every batch stacks.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Sampler

from filmstrip.errors import InputError

DEFAULT_ASPECTS = (9 / 16, 2 / 3, 3 / 4, 1.0, 4 / 3, 3 / 2, 16 / 9)  # width / height


@dataclass(frozen=True, order=True)
class Bucket:
    height: int
    width: int

    @property
    def aspect(self) -> float:
        return self.width / self.height


def make_buckets(
    area: int = 256 * 256, aspects: Sequence[float] = DEFAULT_ASPECTS, multiple: int = 16
) -> list[Bucket]:
    """One bucket per aspect ratio, each with about `area` pixels and sides divisible by `multiple`.

    Sides are chosen together: rounding each side on its own turned 4:3 into 48x80 (5:3) at
    64x64, where it took 16:9's bucket and 4:3 footage had none within tolerance. Each aspect
    gets the multiple-of-`multiple` rectangle that best keeps its shape, then its area."""
    buckets = set()
    for aspect in aspects:
        best, best_cost = None, math.inf
        for h in range(multiple, 4 * math.isqrt(area) + multiple, multiple):
            w = max(multiple, round(h * aspect / multiple) * multiple)
            cost = abs(math.log(w / h / aspect)) + 0.25 * abs(math.log(h * w / area))
            if cost < best_cost - 1e-12:
                best, best_cost = Bucket(h, w), cost
        buckets.add(best)
    return sorted(buckets, key=lambda b: b.aspect)


def crop_loss(height: int, width: int, bucket: Bucket) -> float:
    """Fraction of a (height, width) frame that covering `bucket` and centre-cropping discards."""
    ratio = (width / height) / bucket.aspect
    return 1.0 - min(ratio, 1.0 / ratio)


def assign_bucket(
    height: int, width: int, buckets: Sequence[Bucket], tolerance: float = 0.2
) -> Bucket | None:
    """The bucket nearest in aspect ratio, or None if even it would crop away more than `tolerance`."""
    best = min(buckets, key=lambda b: abs(math.log((width / height) / b.aspect)))
    return best if crop_loss(height, width, best) <= tolerance else None


def cover_size(height: int, width: int, bucket: Bucket) -> tuple[int, int]:
    """(H, W) to resize to, with the aspect kept, so the frame covers the bucket."""
    scale = max(bucket.height / height, bucket.width / width)
    return max(bucket.height, round(height * scale)), max(bucket.width, round(width * scale))


def center_crop(video_cthw: torch.Tensor, bucket: Bucket) -> torch.Tensor:
    """Crop the middle (bucket.height, bucket.width) of a (..., H, W) tensor."""
    h, w = video_cthw.shape[-2:]
    if h < bucket.height or w < bucket.width:
        raise InputError(f"a {h}x{w} frame is smaller than the {bucket.height}x{bucket.width} bucket")
    top, left = (h - bucket.height) // 2, (w - bucket.width) // 2
    return video_cthw[..., top : top + bucket.height, left : left + bucket.width]


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of dataset indices that all share a bucket; reshuffled per epoch from a seed."""

    def __init__(
        self, buckets_per_item: Sequence[Bucket], batch_size: int, drop_last: bool = False, seed: int = 0
    ):
        self.groups: dict[Bucket, list[int]] = defaultdict(list)
        for i, bucket in enumerate(buckets_per_item):
            self.groups[bucket].append(i)
        self.batch_size, self.drop_last, self.seed, self.epoch = batch_size, drop_last, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        batches = []
        for bucket in sorted(self.groups):
            members = rng.permutation(self.groups[bucket]).tolist()
            for lo in range(0, len(members), self.batch_size):
                batch = members[lo : lo + self.batch_size]
                if len(batch) == self.batch_size or not self.drop_last:
                    batches.append(batch)
        order = rng.permutation(len(batches))
        return [batches[k] for k in order]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())
