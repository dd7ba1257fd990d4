"""Built-in datasets and the one way the CLI names them: "shapes", "digits", "folder:PATH" or
"photos:PATH" (camera motion over still photographs).

The datasets load on first use (PEP 562): importing one helper of this package, such as
`filmstrip.data.buckets` for `generate --image`, does not import every dataset and OpenCV."""

from __future__ import annotations

import importlib

from torch.utils.data import Dataset

from filmstrip.errors import InputError

_HOMES = {
    "DigitsConfig": "digits",
    "DigitsDataset": "digits",
    "FolderConfig": "folder",
    "FolderDataset": "folder",
    "PhotoClipsConfig": "photos",
    "PhotoClipsDataset": "photos",
    "ShapesConfig": "shapes",
    "ShapesDataset": "shapes",
    "collate_clips": "shapes",
}

__all__ = [*_HOMES, "build_dataset"]


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


def build_dataset(
    spec: str,
    num_frames: int = 16,
    height: int = 64,
    width: int = 64,
    fps: float | None = None,
    seed: int = 0,
    split: str = "train",
    clips_per_video: int = 1,
) -> Dataset:
    """A dataset from its name. For folders, height * width sets the bucket area, fps=None
    keeps each video's own rate and each video gives `clips_per_video` random windows; the
    procedural sets default to 8 fps."""
    from filmstrip.data.digits import DigitsConfig, DigitsDataset
    from filmstrip.data.folder import FolderConfig, FolderDataset
    from filmstrip.data.photos import PhotoClipsConfig, PhotoClipsDataset
    from filmstrip.data.shapes import ShapesConfig, ShapesDataset

    if spec == "shapes":
        # Held-out clips come from another seed range: procedural data has no fixed test set.
        return ShapesDataset(
            ShapesConfig(
                num_frames=num_frames,
                height=height,
                width=width,
                fps=fps or 8.0,
                seed=seed + (split == "test") * 10**6,
            )
        )
    if spec == "digits":
        return DigitsDataset(
            DigitsConfig(
                num_frames=num_frames, height=height, width=width, fps=fps or 8.0, seed=seed, split=split
            )
        )
    if spec.startswith("folder:"):
        return FolderDataset(
            FolderConfig(
                root=spec.removeprefix("folder:"),
                num_frames=num_frames,
                fps=fps,
                area=height * width,
                clips_per_video=clips_per_video,
                seed=seed,
            )
        )
    if spec.startswith("photos:"):
        return PhotoClipsDataset(
            PhotoClipsConfig(
                root=spec.removeprefix("photos:"),
                num_frames=num_frames,
                height=height,
                width=width,
                fps=fps or 8.0,
                seed=seed,
                split=split,
            )
        )
    raise InputError(f"unknown dataset {spec!r}: use 'shapes', 'digits', 'folder:PATH' or 'photos:PATH'")
