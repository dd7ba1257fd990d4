"""Mirrored clips: every clip of a dataset, then the same clip flipped left to right with the
words "left" and "right" of its caption swapped, which doubles a small set honestly.

A few dozen clips teach a LoRA its captions as much as its concept (on 64 star clips the
training prompts reached 91% and fresh ones 53%); a mirrored clip is a new pairing of
picture and words that is still true. It suits footage without writing or handedness
(a scene's text would read backwards). Items alternate: 2i is clip i, 2i + 1 its mirror, so
the first n items of the set are n / 2 clips and their mirrors.
"""

from __future__ import annotations

import re
from collections.abc import Hashable

from torch.utils.data import Dataset

from filmstrip.data.join import Index, item_groups, split_index, varies_by_epoch

_SIDES = re.compile(r"\b(left|right)(?=\b|wards\b)", re.IGNORECASE)


def mirror_caption(text: str) -> str:
    """`text` with "left" and "right" swapped, case kept ("Left" -> "Right")."""

    def swap(m: re.Match) -> str:
        word = m.group(1)
        other = "right" if word.lower() == "left" else "left"
        return other.capitalize() if word[0].isupper() else other

    return _SIDES.sub(swap, text)


class Mirrored(Dataset):
    """Items 2i: `source`[i]; 2i + 1: it flipped along the width (the last axis of "video",
    and of "focus" if it has one), its caption mirrored; a truth, if any, is dropped from a
    mirror rather than left wrong."""

    def __init__(self, source: Dataset):
        self.source = source
        self.varies_by_epoch = varies_by_epoch(source)

    def __len__(self) -> int:
        return 2 * len(self.source)

    def item_groups(self) -> list[Hashable] | None:
        groups = item_groups(self.source)
        return None if groups is None else [g for g in groups for _ in range(2)]

    def __getitem__(self, index: Index) -> dict:
        i, epoch = split_index(index)
        if not 0 <= i < len(self):
            raise IndexError(f"item {i} out of range for a dataset of {len(self)} items")
        j, flip = divmod(i, 2)
        item = self.source[(j, epoch)] if epoch is not None and self.varies_by_epoch else self.source[j]
        if not flip:
            return item
        out = {k: v for k, v in item.items() if k != "truth"}
        out["video"] = item["video"].flip(-1)
        if "focus" in item:  # a focus mask goes where the picture goes
            out["focus"] = item["focus"].flip(-1)
        out["caption"] = mirror_caption(item.get("caption", ""))
        return out
