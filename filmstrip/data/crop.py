"""Random square crops of another dataset's clips, so that clips of any size and aspect
(a folder of real footage in several buckets) stack into one batch. The crop of item i is a
pure function of (seed, i), like everything else in `data`."""

from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset

from filmstrip.data.join import Index, split_index, varies_by_epoch
from filmstrip.errors import InputError


class RandomCropDataset(Dataset):
    def __init__(self, base: Dataset, size: int, seed: int = 0):
        self.base, self.size, self.seed = base, size, seed

    def __len__(self) -> int:
        return len(self.base)

    @property
    def varies_by_epoch(self) -> bool:
        return varies_by_epoch(self.base)

    def __getitem__(self, index: Index) -> dict:
        i, epoch = split_index(index)
        item = dict(self.base[index] if epoch is not None and self.varies_by_epoch else self.base[i])
        video = item["video"]  # (C, T, H, W)
        h, w = video.shape[-2:]
        if h < self.size or w < self.size:
            raise InputError(
                f"cannot crop {self.size}x{self.size} from {h}x{w} frames: lower the crop or raise the size"
            )
        rng = np.random.default_rng([self.seed, 7, i])
        top, left = int(rng.integers(0, h - self.size + 1)), int(rng.integers(0, w - self.size + 1))
        item["video"] = video[..., top : top + self.size, left : left + self.size].contiguous()
        return item
