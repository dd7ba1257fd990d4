"""Structure maps: per-frame pictures of where things are, what a ControlNet is conditioned on.

* **object masks** of `shapes` clips, drawn exactly from their ground truth (`truth_masks`);
* **edges** of any footage, OpenCV's Canny per frame (`edge_maps`), for real video.

Maps are float (C=1, T, H, W) in [0, 1] at the clip's own frames and size. The same masks at
the latents' resolution are a focus map (`WithObjectFocus`): where training weighs the loss
more (`task.focus_weight`).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from filmstrip.data.latents import latent_focus
from filmstrip.data.shapes import truth_masks
from filmstrip.errors import InputError
from filmstrip.io.layout import to_uint8_thwc


def edge_maps(video, low: int = 50, high: int = 150) -> torch.Tensor:
    """(1, T, H, W) float Canny edges of a (C, T, H, W) clip (uint8, or float in [-1, 1])."""
    frames = to_uint8_thwc(video)
    edges = [cv2.Canny(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), low, high) for f in frames]
    return torch.from_numpy(np.stack(edges)).float()[None] / 255.0


class _FromTruth(Dataset):
    """Items of a latent cache of `shapes` clips, each with something drawn from its truth (in
    the loader's workers); everything else passes through to the cache."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def _item(self, i) -> tuple[dict, dict]:
        """A copy of the cache's item i, and its truth (a clip without one is refused)."""
        item = dict(self.dataset[i])
        truth = item.get("truth") or {}
        if not truth.get("objects") or "positions" not in truth["objects"][0]:
            raise InputError("object masks need `shapes` clips with their ground truth (positions per frame)")
        return item, truth

    def __getattr__(self, name):  # item_groups and the like pass through to the cache
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


class WithMasks(_FromTruth):
    """Each clip's object masks as "control" (1, T, H, W) at `size` x `size`: a ControlNet's
    structure maps."""

    def __init__(self, dataset: Dataset, size: int):
        super().__init__(dataset)
        self.size = size

    def __getitem__(self, i):
        item, truth = self._item(i)
        item["control"] = torch.from_numpy(truth_masks(truth, self.size, self.size))[None]
        return item


class WithObjectFocus(_FromTruth):
    """Every object of each clip as its "focus" (T', H', W'): the object masks at the latents'
    size times `spatial`, taken to latent pixels as a cached focus mask is (`latent_focus`).
    Objects are a small part of each frame, and what moves in a clip is nothing but its objects."""

    def __init__(self, dataset: Dataset, temporal: int, spatial: int):
        super().__init__(dataset)
        self.temporal, self.spatial = temporal, spatial

    def __getitem__(self, i):
        item, truth = self._item(i)
        h, w = item["latents"].shape[-2:]
        masks = torch.from_numpy(truth_masks(truth, h * self.spatial, w * self.spatial))
        item["focus"] = latent_focus(masks[None, None], self.temporal, self.spatial)[0]
        return item
