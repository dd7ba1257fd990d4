"""`prepare(SRC, OUT)`: a folder of raw videos -> a folder of training clips with a manifest.

Per source video: scene cuts (cuts.py) split it into shots, and shots longer than
`max_seconds` into pieces; each piece is measured (duration, source size, mean brightness,
motion score from optical flow) and kept or dropped with its reason; a kept piece is resized
to its aspect-ratio bucket (cover, then centre crop), written as `OUT/clips/<name>_<k>.mp4`
with its caption (carried from the source's sidecar or `captions.jsonl`) as a sidecar `.txt`,
so that `folder:OUT/clips` trains directly.

Resumable: each finished source leaves its part of the manifest in `OUT/parts/` (written
atomically, with the source's size and modification time); a re-run skips sources whose part
is there and current (rewriting only the captions where a source has been captioned since),
removes the clips an earlier run made that this one drops, and rebuilds `OUT/manifest.jsonl`
from the parts. Unreadable files are skipped and counted, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from filmstrip.atomic import write_text_atomic
from filmstrip.checkpoint import write_json_atomic
from filmstrip.config import require
from filmstrip.data.buckets import (
    DEFAULT_ASPECTS,
    assign_bucket,
    center_crop,
    cover_size,
    crop_loss,
    make_buckets,
)
from filmstrip.data.cuts import CutConfig, change_scores, find_cuts
from filmstrip.data.flow import motion_score
from filmstrip.data.folder import VIDEO_SUFFIXES, caption_of, read_captions
from filmstrip.errors import InputError
from filmstrip.io import VideoReadError, iter_frames, probe, read_video, write_video

REASONS = ("too short", "too small", "too dark", "blown out", "too static", "no bucket")


@dataclass(frozen=True)
class PrepareConfig:
    min_seconds: float = 1.0
    max_seconds: float = 10.0  # longer shots are cut into pieces of at most this
    min_side: int = 64  # source pixels: smaller videos are "too small"
    dark: float = 16.0  # mean luma (0..255) below which a piece is "too dark"
    bright: float = 240.0  # ... above which it is "blown out"
    min_motion: float = 0.003  # short sides per second (flow.motion_score): below is "too static"
    area: int = 256 * 256  # pixels per frame of the written clips
    aspects: tuple[float, ...] = DEFAULT_ASPECTS
    tolerance: float = 0.2  # most of a frame a bucket may crop away
    analysis_size: int = 96  # short side at which cuts, brightness and motion are measured
    motion_pairs: int = 16  # frame pairs the motion score averages over, spread over the piece
    cuts: CutConfig = field(default_factory=CutConfig)

    def __post_init__(self):
        require(
            self,
            at_least={
                "min_side": 8,
                "area": 64,
                "analysis_size": 8,
                "motion_pairs": 1,
                "tolerance": 0,
                "min_motion": 0,
            },
            above={"min_seconds": 0},
        )
        if not self.min_seconds <= self.max_seconds:
            raise InputError(
                f"min_seconds ({self.min_seconds}) is more than max_seconds ({self.max_seconds})"
            )
        if not self.tolerance < 1:
            raise InputError(
                f"tolerance is the most of a frame a bucket may crop away, below 1; got {self.tolerance}"
            )
        if not self.aspects or min(self.aspects) <= 0:
            raise InputError(f"aspects are positive width / height ratios, got {self.aspects}")


@dataclass
class Summary:
    """What a folder's preparation kept and dropped, over this run and earlier ones."""

    sources: int = 0
    skipped_done: int = 0  # finished in an earlier run
    recaptioned: int = 0  # of those, given a new caption since
    unreadable: list[str] = field(default_factory=list)
    kept: int = 0
    uncaptioned: int = 0  # kept clips without a caption
    dropped: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)  # what an option would change

    def lines(self) -> list[str]:
        again = f", {self.recaptioned} with new captions" if self.recaptioned else ""
        out = [
            f"{self.sources} source videos: {self.skipped_done} already prepared{again}, "
            f"{len(self.unreadable)} unreadable",
            f"{self.kept} clips kept, {sum(self.dropped.values())} dropped"
            + "".join(f"; {n} {reason}" for reason, n in sorted(self.dropped.items())),
        ]
        out += [f"  unreadable: {u}" for u in self.unreadable[:5]]
        out += [f"  {note}" for note in self.notes[:5]]
        if self.uncaptioned:
            out.append(
                f"  {self.uncaptioned} of {self.kept} clips have no caption (a text-to-video model learns "
                "them without text): give each source video a NAME.txt beside it or a line in "
                "SRC/captions.jsonl and run again; only the captions are rewritten"
            )
        return out


def _write_caption(clip: Path, caption: str) -> None:
    """The clip's sidecar caption, or none for an empty caption."""
    if caption:
        write_text_atomic(clip.with_suffix(".txt"), caption + "\n")
    else:
        clip.with_suffix(".txt").unlink(missing_ok=True)


def pieces(num_frames: int, cuts: list[int], fps: float, max_seconds: float) -> list[tuple[int, int]]:
    """[start, end) frame ranges: shots between cuts, each split into equal pieces no longer
    than max_seconds."""
    edges = [0, *cuts, num_frames]
    out = []
    for a, b in zip(edges, edges[1:], strict=False):
        n = max(1, math.ceil((b - a) / (max_seconds * fps)))
        bounds = np.linspace(a, b, n + 1).round().astype(int)
        out += [(int(s), int(e)) for s, e in zip(bounds, bounds[1:], strict=False) if e > s]
    return out


def judge(
    frames: np.ndarray, start: int, end: int, fps: float, source_hw: tuple[int, int], cfg: PrepareConfig
):
    """(reason it is dropped or None, its measurements) for frames[start:end] (analysis size)."""
    seconds = (end - start) / fps
    luma = float(np.mean([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).mean() for f in frames[start:end:4]]))
    stats = {"seconds": round(seconds, 3), "brightness": round(luma, 2)}
    if seconds < cfg.min_seconds:
        return "too short", stats
    if min(source_hw) < cfg.min_side:
        return "too small", stats
    if luma < cfg.dark:
        return "too dark", stats
    if luma > cfg.bright:
        return "blown out", stats
    starts = np.linspace(start, end - 2, min(cfg.motion_pairs, end - start - 1)).round().astype(int)
    speed = float(np.mean([motion_score(frames[s : s + 2], fps) for s in starts]))
    stats["motion"] = round(speed, 5)
    if speed < cfg.min_motion:
        return "too static", stats
    return None, stats


def _part_path(out: Path, relative: str) -> Path:
    return out / "parts" / (hashlib.sha256(relative.encode()).hexdigest()[:16] + ".json")


def prepare_video(
    path: Path, src: Path, out: Path, caption: str, cfg: PrepareConfig
) -> tuple[list[dict], Counter, str | None]:
    """The manifest rows of one source video (its clips written under out/clips, each with
    `caption`), how many of its pieces were dropped for each reason, and a note for the
    summary where the fix is an option away (no bucket within the tolerance)."""
    info = probe(path)
    if info.truncated:
        raise VideoReadError(f"{path}: truncated or corrupt")
    small = np.stack([f for _, f in iter_frames(path, size=cfg.analysis_size)])
    cuts = find_cuts(change_scores(small), cfg.cuts)
    buckets = make_buckets(cfg.area, cfg.aspects)
    bucket = assign_bucket(info.height, info.width, buckets, cfg.tolerance)
    rows, dropped, note = [], Counter(), None
    stem = path.relative_to(src).with_suffix("").as_posix().replace("/", "__")
    for k, (start, end) in enumerate(pieces(len(small), cuts, info.fps, cfg.max_seconds)):
        reason, stats = judge(small, start, end, info.fps, (info.height, info.width), cfg)
        if reason is None and bucket is None:
            reason = "no bucket"
            nearest = min(crop_loss(info.height, info.width, b) for b in buckets)
            note = (f"{path.relative_to(src).as_posix()}: no bucket, {info.width}x{info.height} would lose "
                    f"{nearest:.0%} of each frame to the nearest (--tolerance {math.ceil(nearest * 100) / 100:g} keeps it)")  # fmt: skip
        if reason:
            dropped[reason] += 1
            continue
        video, clip = read_video(path, num_frames=end - start, start=float(start / info.fps))
        x = torch.nn.functional.interpolate(
            video.permute(1, 0, 2, 3).float(), cover_size(info.height, info.width, bucket), mode="area"
        )
        x = center_crop(x, bucket).round().clamp(0, 255).to(torch.uint8).permute(1, 0, 2, 3)
        name = f"{stem}_{k:03d}.mp4"
        write_video(out / "clips" / name, x, fps=info.fps)
        _write_caption(out / "clips" / name, caption)
        rows.append(
            {
                "file": f"clips/{name}",
                "source": path.relative_to(src).as_posix(),
                "start": round(clip.timestamps[0], 4),
                "frames": end - start,
                "fps": info.fps,
                "width": bucket.width,
                "height": bucket.height,
                "caption": caption,
                **stats,
            }  # fmt: skip
        )
    return rows, dropped, note


def prepare(
    src: Path | str, out: Path | str, cfg: PrepareConfig | None = None, progress: bool = True
) -> Summary:
    """Prepare every video under `src` into `out` (see the module docstring)."""
    cfg = cfg or PrepareConfig()
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise InputError(f"{src}: not a folder; give the folder that holds your videos")
    if out.resolve().is_relative_to(src.resolve()):
        raise InputError(f"{out}: the output folder must not lie inside the source folder {src}")
    files = sorted(p for p in src.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"{src}: no videos in this folder or below it ({', '.join(VIDEO_SUFFIXES)})")
    (out / "clips").mkdir(parents=True, exist_ok=True)
    (out / "parts").mkdir(exist_ok=True)
    captions = read_captions(src)
    summary = Summary(sources=len(files))
    parts = []
    for path in tqdm(files, desc="preparing", unit="video", disable=not progress):
        relative = path.relative_to(src).as_posix()
        part = _part_path(out, relative)
        parts.append(part)
        caption = caption_of(path, src, captions) or ""
        # Through JSON, so that it compares equal to what a part file holds.
        stamp = json.loads(json.dumps({"size": path.stat().st_size, "mtime_ns": path.stat().st_mtime_ns, "settings": asdict(cfg)}))  # fmt: skip
        previous = json.loads(part.read_text()) if part.exists() else None
        if previous is not None and previous.get("stamp") == stamp:
            summary.skipped_done += 1
            if any(row["caption"] != caption for row in previous["rows"]):  # captioned since: no re-encoding
                summary.recaptioned += 1
                for row in previous["rows"]:
                    row["caption"] = caption
                    _write_caption(out / row["file"], caption)
                write_json_atomic(part, previous)
            continue
        try:
            rows, dropped, note = prepare_video(path, src, out, caption, cfg)
            unreadable = None
        except VideoReadError as e:
            rows, dropped, note, unreadable = [], Counter(), None, str(e)
        # Clips an earlier run made of this video that this run drops (other settings) go with
        # it: `folder:OUT/clips` trains on every video in the folder, not on the manifest.
        kept = {r["file"] for r in rows}
        for row in previous["rows"] if previous else []:
            if row["file"] not in kept:
                (out / row["file"]).unlink(missing_ok=True)
                (out / row["file"]).with_suffix(".txt").unlink(missing_ok=True)
        write_json_atomic(part, {"source": relative, "stamp": stamp, "rows": rows, "dropped": dropped, "note": note, "unreadable": unreadable})  # fmt: skip
    manifest = []
    for part in parts:
        done = json.loads(part.read_text())
        manifest += done["rows"]
        summary.dropped.update(done["dropped"])
        if done["unreadable"]:
            summary.unreadable.append(done["unreadable"])
        if done.get("note"):  # parts written before notes have none
            summary.notes.append(done["note"])
    summary.kept = len(manifest)
    summary.uncaptioned = sum(not row["caption"] for row in manifest)
    manifest.sort(key=lambda r: r["file"])
    write_text_atomic(out / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in manifest))
    return summary


def read_manifest(out: Path | str) -> list[dict]:
    path = Path(out) / "manifest.jsonl"
    if not path.exists():
        raise InputError(f"{path}: no manifest; run `filmstrip data prepare` first")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
