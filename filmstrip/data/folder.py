"""`folder`: clips from any folder of videos, with optional captions, in aspect-ratio buckets.

Captions come from a sidecar `clip.txt` beside `clip.mp4`, or from `captions.jsonl` at the
root with lines `{"file": "sub/clip.mp4", "caption": "..."}` (the sidecar wins); a video
with neither has the caption "". Every file is probed once when the dataset is built;
unreadable files, videos too short for the clip asked for and aspect ratios no bucket can
take are skipped, counted and summarised in one warning, never silently. A file that fails
later, while decoding, is reported and replaced by the next readable clip so a long training
run does not stop for one bad file.

A clip may also have a focus mask, a sidecar video `clip.mask.mp4` (any video suffix) of the
same frames, white where the clip shows what training should weigh most (a LoRA's new
concept; T2VConfig.focus_weight): it is read with the clip's own start, size and crop, and
files named `*.mask.*` are never clips themselves.
"""

from __future__ import annotations

import bisect
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from filmstrip.config import require
from filmstrip.data.buckets import (
    DEFAULT_ASPECTS,
    Bucket,
    assign_bucket,
    center_crop,
    cover_size,
    make_buckets,
)
from filmstrip.data.join import Index, split_index
from filmstrip.errors import FilmstripWarning, InputError
from filmstrip.io import VideoInfo, VideoReadError, frame_timestamps, probe, read_video

VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".gif", ".avi", ".m4v")


@dataclass(frozen=True)
class FolderConfig:
    root: str
    num_frames: int = 16
    fps: float | None = None  # None: the source rate
    sampling: Literal["index", "time"] = "index"
    area: int = 256 * 256  # pixels per frame in every bucket
    aspects: tuple[float, ...] = DEFAULT_ASPECTS
    tolerance: float = 0.2  # most of a frame a bucket may crop away
    random_start: bool = True  # False: every clip starts at the first frame
    # Items per video: item i reads video i % num_videos from its own random start, so an
    # epoch over a few long videos still sees many different windows of each.
    clips_per_video: int = 1
    seed: int = 0

    def __post_init__(self):
        require(self, at_least={"num_frames": 1, "area": 64, "clips_per_video": 1, "tolerance": 0})
        if self.fps is not None and not self.fps > 0:
            raise InputError(f"fps must be more than 0 (or None: each video's own rate), got {self.fps}")
        if not self.tolerance < 1:
            raise InputError(
                f"tolerance is the most of a frame a bucket may crop away, below 1; got {self.tolerance}"
            )
        if self.sampling not in ("index", "time"):
            raise InputError(f"sampling must be 'index' or 'time', got {self.sampling!r}")


@dataclass(frozen=True)
class FolderItem:
    path: Path
    caption: str
    info: VideoInfo
    bucket: Bucket
    mask: Path | None = None  # the focus mask's sidecar video, if the clip has one


def read_captions(root: Path) -> dict[str, str]:
    path = root / "captions.jsonl"
    if not path.exists():
        return {}
    captions = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            captions[str(entry["file"])] = str(entry["caption"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise InputError(
                f'{path}:{number}: expected a JSON object like {{"file": "clip.mp4", "caption": "..."}}'
            ) from None
    return captions


def caption_of(path: Path, root: Path, captions: dict[str, str]) -> str | None:
    """A video's caption: its sidecar `.txt`, else its line in `captions.jsonl` (`captions`, by
    path under `root` or by name), else "". None for a sidecar that is a link out of `root`:
    a link to /etc/passwd must not become a caption."""
    sidecar = path.with_suffix(".txt")
    if sidecar.exists():
        return sidecar.read_text().strip() if sidecar.resolve().is_relative_to(root.resolve()) else None
    return captions.get(path.relative_to(root).as_posix(), captions.get(path.name, ""))


def is_mask(path: Path) -> bool:
    """A focus mask's sidecar (`clip.mask.mp4`), not a clip."""
    return Path(path.stem).suffix == ".mask"


def mask_of(path: Path) -> Path | None:
    """The focus mask beside video `path`: `stem.mask.<suffix>` for any video suffix, or None."""
    for suffix in VIDEO_SUFFIXES:
        sidecar = path.with_name(f"{path.stem}.mask{suffix}")
        if sidecar.is_file():
            return sidecar
    return None


class FolderDataset(Dataset):
    """Item i -> {"video": float (C, T, H, W) in [-1, 1] at its bucket's size, "caption", "path",
    "fps"}, and "focus": float (1, T, H, W) in [0, 1] for a clip with a focus mask."""

    def __init__(self, cfg: FolderConfig):
        self.cfg = cfg
        root = Path(cfg.root)
        if not root.is_dir():
            raise InputError(f"{root}: not a folder; give the folder that holds your videos")
        self.buckets = make_buckets(cfg.area, cfg.aspects)
        self.epoch = 0
        files = sorted(
            p
            for p in root.rglob("*")
            if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file() and not is_mask(p)
        )
        captions = read_captions(root)
        self.items: list[FolderItem] = []
        self.skipped: list[tuple[Path, str]] = []
        for path in tqdm(files, desc=f"indexing {root}", unit="video", disable=len(files) < 50, leave=False):
            reason = self._admit(path, captions, root)
            if reason:
                self.skipped.append((path, reason))
        if self.skipped:
            listed = "; ".join(f"{p.name}: {r}" for p, r in self.skipped[:5])
            more = f"; and {len(self.skipped) - 5} more" if len(self.skipped) > 5 else ""
            warnings.warn(
                f"{root}: using {len(self.items)} of {len(files)} videos, skipped {len(self.skipped)} ({listed}{more})",
                FilmstripWarning,
                stacklevel=2,
            )
        if not self.items:
            raise InputError(
                f"{root}: no usable videos among {len(files)} files with suffixes {', '.join(VIDEO_SUFFIXES)}"
            )
        self._same_bucket: dict[Bucket, list[int]] = {}
        for i, item in enumerate(self.items):
            self._same_bucket.setdefault(item.bucket, []).append(i)

    def _admit(self, path: Path, captions: dict[str, str], root: Path) -> str | None:
        """Add `path` to the items, or return why it cannot be used."""
        try:
            info = probe(path)
        except VideoReadError as e:
            return str(e).removeprefix(f"{path}: ")
        if info.truncated:
            return "truncated or corrupt"
        fps = self.cfg.fps or info.fps
        needed = (self.cfg.num_frames - 1) / fps
        if info.duration - 1 / info.fps < needed - 1e-6:
            return f"too short: {info.duration:.2f} s for {self.cfg.num_frames} frames at {fps:g} fps"
        bucket = assign_bucket(info.height, info.width, self.buckets, self.cfg.tolerance)
        if bucket is None:
            return f"aspect ratio {info.width}x{info.height} has no bucket within {self.cfg.tolerance:.0%} cropping"
        text = caption_of(path, root, captions)
        if text is None:
            return f"its caption {path.with_suffix('.txt').name} links outside {root}"
        mask = mask_of(path)
        if mask is not None:
            if not mask.resolve().is_relative_to(root.resolve()):
                return f"its mask {mask.name} links outside {root}"
            try:
                mask_info = probe(mask)
            except VideoReadError as e:
                return f"its mask {mask.name}: {str(e).removeprefix(f'{mask}: ')}"
            if (mask_info.num_frames, mask_info.height, mask_info.width) != (
                info.num_frames,
                info.height,
                info.width,
            ):
                return (
                    f"its mask {mask.name} is {mask_info.num_frames} frames of {mask_info.width}x{mask_info.height}, "
                    f"the clip {info.num_frames} of {info.width}x{info.height}"
                )
        self.items.append(FolderItem(path, text, info, bucket, mask))
        return None

    def __len__(self) -> int:
        return len(self.items) * self.cfg.clips_per_video

    @property
    def item_buckets(self) -> list[Bucket]:
        """The bucket of every item, for `BucketBatchSampler`."""
        return [item.bucket for item in self.items] * self.cfg.clips_per_video

    def item_groups(self) -> list[Bucket]:
        """Items that stack into one batch share a bucket (see data/join.py)."""
        return self.item_buckets

    # Clip starts are drawn again every epoch: self[(i, epoch)] (see data/join.py).
    varies_by_epoch = True

    def set_epoch(self, epoch: int) -> None:
        """Draw new clip starts: item i's start is a function of (seed, epoch, i)."""
        self.epoch = epoch

    def _start(self, item: FolderItem, rng: np.random.Generator) -> float:
        """A random start (seconds) from which the requested clip still fits."""
        if not self.cfg.random_start:
            return 0.0
        times = frame_timestamps(item.path)
        n, fps = self.cfg.num_frames, self.cfg.fps
        if self.cfg.sampling == "index":
            stride = 1.0 if fps is None else item.info.fps / fps
            last_start = len(times) - 1 - math.floor((n - 1) * stride + 0.5)
            return float(times[int(rng.integers(0, last_start + 1))])
        span = (n - 1) / (fps or item.info.fps)
        return float(rng.uniform(0.0, max(0.0, item.info.duration - span - 1e-3)))

    def _load(self, i: int, video: int, epoch: int) -> dict:
        item = self.items[video]
        rng = np.random.default_rng([self.cfg.seed, epoch, i])
        start = self._start(item, rng)
        read = lambda path: center_crop(  # noqa: E731 (the clip and its mask, read alike)
            read_video(
                path,
                num_frames=self.cfg.num_frames,
                fps=self.cfg.fps,
                size=cover_size(item.info.height, item.info.width, item.bucket),
                start=start,
                sampling=self.cfg.sampling,
                dtype=torch.float32,
            )[0],
            item.bucket,
        ).contiguous()
        out = {
            "video": read(item.path),
            "caption": item.caption,
            "path": str(item.path),
            "fps": self.cfg.fps or item.info.fps,  # the rate the clip was read at
        }
        if item.mask is not None:  # grey levels in [-1, 1] -> weights in [0, 1]
            out["focus"] = (read(item.mask).mean(dim=0, keepdim=True) + 1) / 2
        return out

    def __getitem__(self, index: Index) -> dict:
        """Item i as drawn in the current epoch (`set_epoch`), or in `epoch` for (i, epoch)."""
        i, epoch = split_index(index)
        epoch = self.epoch if epoch is None else epoch
        if not 0 <= i < len(self):
            raise IndexError(f"item {i} out of range for a dataset of {len(self)} videos")
        # A clip that fails to decode is replaced by the next one in the same bucket, so that
        # batches from BucketBatchSampler still stack.
        video = i % len(self.items)
        same_bucket = self._same_bucket[self.items[video].bucket]  # ascending, so bisect finds it
        start = bisect.bisect_left(same_bucket, video)
        for k in range(len(same_bucket)):
            j = same_bucket[(start + k) % len(same_bucket)]
            try:
                return self._load(i, j, epoch)
            except VideoReadError as e:
                warnings.warn(f"skipping a clip that failed to decode: {e}", FilmstripWarning, stacklevel=2)
        raise VideoReadError(
            f"{self.cfg.root}: no video in the {self.items[video].bucket} bucket could be decoded"
        )
