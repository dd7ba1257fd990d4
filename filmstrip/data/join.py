"""Several datasets as one, keeping what batching needs.

Two conventions let the trainer batch any dataset correctly:

* **Groups.** `item_groups(dataset)` gives each item a key; items with the same key stack into
  one batch (a folder's aspect-ratio bucket). None means every item stacks with every other.
* **Draws per epoch.** A dataset with `varies_by_epoch = True` (a folder, whose clips start at
  random times) also takes `dataset[(i, epoch)]`: item i as drawn in that epoch, a pure
  function of (seed, epoch, i). Passing the epoch in the index, rather than setting it on the
  dataset, reaches DataLoader worker processes too.
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable, Sequence

import torch
from torch.utils.data import Dataset

Index = int | tuple[int, int]  # i, or (i, epoch)


def split_index(index: Index) -> tuple[int, int | None]:
    return (index[0], index[1]) if isinstance(index, tuple) else (index, None)


def varies_by_epoch(dataset: Dataset) -> bool:
    return bool(getattr(dataset, "varies_by_epoch", False))


def item_groups(dataset: Dataset) -> list[Hashable] | None:
    """The batching group of every item, or None when all items stack."""
    method = getattr(dataset, "item_groups", None)
    groups = method() if callable(method) else None
    return list(groups) if groups is not None else None


class JoinedDataset(Dataset):
    """The items of `parts` one after another (like torch's ConcatDataset), with their groups
    (a part without groups is one group of its own) and per-epoch draws passed through."""

    def __init__(self, parts: Sequence[Dataset]):
        self.parts = list(parts)
        self.ends = []
        total = 0
        for part in self.parts:
            total += len(part)
            self.ends.append(total)
        self.varies_by_epoch = any(varies_by_epoch(p) for p in self.parts)

    def __len__(self) -> int:
        return self.ends[-1] if self.ends else 0

    def item_groups(self) -> list[Hashable]:
        out: list[Hashable] = []
        for k, part in enumerate(self.parts):
            groups = item_groups(part)
            out += [(k, g) for g in groups] if groups is not None else [(k,)] * len(part)
        return out

    def __getitem__(self, index: Index) -> dict:
        i, epoch = split_index(index)
        if not 0 <= i < len(self):
            raise IndexError(f"item {i} out of range for a dataset of {len(self)} items")
        k = bisect.bisect_right(self.ends, i)
        j = i - (self.ends[k - 1] if k else 0)
        part = self.parts[k]
        return part[(j, epoch)] if epoch is not None and varies_by_epoch(part) else part[j]


class Resampled(Dataset):
    """`size` items of `source` per epoch, drawn afresh each epoch without repeats: item
    (i, epoch) is source[permutation(seed, epoch)[i]]. Joined with a small set, it shows a
    bounded, changing slice of a large one (a LoRA's prior-preservation clips)."""

    varies_by_epoch = True

    def __init__(self, source: Dataset, size: int, seed: int = 0):
        if not 0 < size <= len(source):
            raise ValueError(f"cannot draw {size} items per epoch from a dataset of {len(source)}")
        self.source, self.size, self.seed = source, size, seed
        self._epoch, self._perm = -1, None

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: Index) -> dict:
        i, epoch = split_index(index)
        if not 0 <= i < self.size:
            raise IndexError(f"item {i} out of range for a dataset of {self.size} items")
        epoch = epoch or 0
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(len(self.source), generator=g)
        return self.source[int(self._perm[i])]
