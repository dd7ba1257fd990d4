"""Built-in datasets and the one way the CLI names them: "shapes", "digits", "folder:PATH" or
"photos:PATH" (camera motion over still photographs)."""

from __future__ import annotations

from torch.utils.data import Dataset

from filmstrip.data.digits import DigitsConfig, DigitsDataset
from filmstrip.data.folder import FolderConfig, FolderDataset
from filmstrip.data.photos import PhotoClipsConfig, PhotoClipsDataset
from filmstrip.data.shapes import ShapesConfig, ShapesDataset, collate_clips
from filmstrip.errors import InputError

__all__ = [
    "DigitsConfig",
    "DigitsDataset",
    "FolderConfig",
    "FolderDataset",
    "PhotoClipsConfig",
    "PhotoClipsDataset",
    "ShapesConfig",
    "ShapesDataset",
    "build_dataset",
    "collate_clips",
]


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
