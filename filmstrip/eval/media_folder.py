"""A folder of media (clips, images) read for a feature distance (FVD, FID): files found
recursively by suffix, read one at a time, stacked into batches of one shape. A file that
cannot be read is skipped and counted, never fatal; a folder where nothing can be read is one
clear error."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch

from filmstrip.errors import InputError
from filmstrip.io.errors import VideoReadError


@dataclass
class MediaFolder:
    """Subclasses say which `suffixes` they read, what the folder holds and what a file is
    called in messages (`holds`, `noun`), and turn a file into items (`read`: a tensor whose
    first axis lists them)."""

    root: Path
    batch: int = 8
    files: list[Path] = field(init=False)
    skipped: list[str] = field(default_factory=list, init=False)  # one reason per skipped file
    count: int = field(default=0, init=False)  # items read
    shapes: set[tuple[int, ...]] = field(default_factory=set, init=False)  # of the items read

    suffixes: ClassVar[tuple[str, ...]] = ()
    holds = "media"
    noun = "files"

    def __post_init__(self):
        self.root = Path(self.root)
        if not self.root.is_dir():
            raise InputError(f"{self.root}: not a folder of {self.holds}")
        self.files = sorted(
            p for p in self.root.rglob("*") if p.is_file() and p.suffix.lower() in self.suffixes
        )
        if not self.files:
            raise InputError(f"{self.root}: no {self.noun} ({', '.join(self.suffixes)}) in this folder")

    def read(self, path: Path) -> torch.Tensor:
        raise NotImplementedError

    def _items(self) -> Iterator[torch.Tensor]:
        for path in self.files:
            try:
                items = self.read(path)
            except VideoReadError as e:
                self.skipped.append(str(e))
                continue
            for item in items:
                self.count += 1
                self.shapes.add(tuple(item.shape[1:]))
                yield item
        if self.count == 0:
            raise InputError(
                f"{self.root}: none of its {len(self.files)} {self.noun} could be read (first: {self.skipped[0]})"
            )

    def __iter__(self) -> Iterator[torch.Tensor]:
        """Batches of up to `batch` items of one shape, stacked on a new first axis."""
        return stacked(self._items(), self.batch)


def stacked(items: Iterable[torch.Tensor], batch: int) -> Iterator[torch.Tensor]:
    """Consecutive items of one shape, `batch` at a time (fewer where the shape changes)."""
    pending: list[torch.Tensor] = []
    for item in items:
        if pending and (item.shape != pending[0].shape or len(pending) == batch):
            yield torch.stack(pending)
            pending = []
        pending.append(item)
    if pending:
        yield torch.stack(pending)
