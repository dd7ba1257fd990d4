"""Structure maps: per-frame pictures of where things are, what a ControlNet is conditioned on.

* **object masks** of `shapes` clips, drawn exactly from their ground truth (`truth_masks`);
* **edges** of any footage, OpenCV's Canny per frame (`edge_maps`), for real video.

Maps are float (C=1, T, H, W) in [0, 1] at the clip's own frames and size.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from filmstrip.data.shapes import truth_masks
from filmstrip.errors import InputError
from filmstrip.io.layout import to_uint8_thwc


def edge_maps(video, low: int = 50, high: int = 150) -> torch.Tensor:
    """(1, T, H, W) float Canny edges of a (C, T, H, W) clip (uint8, or float in [-1, 1])."""
    frames = to_uint8_thwc(video)
    edges = [cv2.Canny(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), low, high) for f in frames]
    return torch.from_numpy(np.stack(edges)).float()[None] / 255.0


class WithMasks(Dataset):
    """Items of a latent cache of `shapes` clips with their object masks as "control"
    (1, T, H, W), drawn from each clip's truth at `size` x `size` (in the loader's workers)."""

    def __init__(self, dataset: Dataset, size: int):
        self.dataset, self.size = dataset, size

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        item = dict(self.dataset[i])
        truth = item.get("truth") or {}
        if not truth.get("objects") or "positions" not in truth["objects"][0]:
            raise InputError("object masks need `shapes` clips with their ground truth (positions per frame)")
        item["control"] = torch.from_numpy(truth_masks(truth, self.size, self.size))[None]
        return item

    def __getattr__(self, name):  # item_groups and the like pass through to the cache
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)
