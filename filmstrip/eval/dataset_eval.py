"""Any text-to-video model on any captioned dataset: generate one video for each held-out
clip's caption and score the generated set against those clips (FVD, FID, frame-to-frame
LPIPS, the temporal dimensions; the physics probe too on `shapes`). With training clips
given, they are scored the same way: the floor a perfect model would reach.

Clips of any size are brought to `size` x `width` (resized with antialiasing to cover it, then
the middle cropped; `width` None: square), the size the model generates at; the numbers say so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from filmstrip.data import build_dataset
from filmstrip.data.buckets import Bucket, center_crop, cover_size
from filmstrip.errors import InputError
from filmstrip.eval.i3d import cache_dir
from filmstrip.eval.report import Networks, ScoreConfig, analyse, summarise_set
from filmstrip.io.layout import to_uint8
from filmstrip.pipelines.generate import GenerateConfig, Pipeline, generate


@dataclass(frozen=True)
class DatasetEvalConfig:
    data: str  # the held-out clips: "shapes", "digits" or "folder:PATH"
    # The floor: another set of real clips (for procedural sets, by default their train split).
    train_data: str | None = None
    clips: int = 64
    frames: int = 17
    size: int = 64  # the frames' height, and their width unless `width` says otherwise
    width: int | None = None
    steps: int = 20
    text_scale: float = 4.0
    seed: int = 0
    batch: int = 8

    @property
    def frame(self) -> tuple[int, int]:
        """(height, width) at which clips are generated and scored."""
        return self.size, self.width or self.size


def fit_frame(video_cthw: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resized (antialiased bilinear) to cover height x width with the aspect kept, then the middle."""
    bucket = Bucket(height, width)
    cover = cover_size(*video_cthw.shape[-2:], bucket)
    x = F.interpolate(
        video_cthw.float().transpose(0, 1), cover, mode="bilinear", antialias=True, align_corners=False
    )
    return center_crop(x, bucket).transpose(0, 1)


def real_clips(spec: str, split: str, cfg: DatasetEvalConfig) -> tuple[torch.Tensor, list[str]]:
    """The first `cfg.clips` clips of a dataset at cfg.frame (uint8) and their captions."""
    data = build_dataset(spec, num_frames=cfg.frames, height=cfg.frame[0], width=cfg.frame[1], split=split)
    if len(data) < cfg.clips:
        raise InputError(f"{spec}: {len(data)} clips, fewer than the {cfg.clips} asked for (--clips)")
    items = [data[i] for i in range(cfg.clips)]
    videos = torch.stack([to_uint8(fit_frame(item["video"], *cfg.frame)) for item in items])
    return videos, [item.get("caption", "") for item in items]


def evaluate_on_dataset(
    pipe: Pipeline,
    cfg: DatasetEvalConfig,
    nets: Networks | None = None,
    progress: bool = True,
    cache: Path | None = None,
) -> dict:
    """{"model": numbers, "train": numbers (when there is a floor)} against the held-out clips.
    Set analyses are cached as the report caches them (by the pixels' hash)."""
    cache = cache if cache is not None else cache_dir() / "report"
    held_out, captions = real_clips(cfg.data, "test", cfg)
    if not any(captions):
        raise InputError(f"{cfg.data}: no clip has a caption, so there is nothing to generate from")
    score_cfg = ScoreConfig(cfg.frames, batch=cfg.batch)
    nets = nets or Networks.load()
    gen = GenerateConfig(
        frames=cfg.frames, height=cfg.frame[0], width=cfg.frame[1], steps=cfg.steps, text_scale=cfg.text_scale
    )
    generated = []
    for start in tqdm(range(0, cfg.clips, cfg.batch), desc="generating", unit="batch", disable=not progress):
        chunk = captions[start : start + cfg.batch]
        generated.append(to_uint8(generate(pipe, chunk, replace(gen, seed=cfg.seed + start))))
    physics = cfg.data == "shapes"
    reference = analyse(held_out, nets, score_cfg, cache, physics, progress, "held-out clips")
    out = {
        "model": summarise_set(
            analyse(torch.cat(generated), nets, score_cfg, cache, physics, progress, "generated"), reference
        )
    }
    train_spec = cfg.train_data or (cfg.data if not cfg.data.startswith("folder:") else None)
    if train_spec:
        train, _ = real_clips(train_spec, "train", cfg)
        out["train"] = summarise_set(
            analyse(train, nets, score_cfg, cache, physics, progress, "train clips"), reference
        )
    return out
