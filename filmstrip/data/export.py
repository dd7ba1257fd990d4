"""Procedural clips written out as a captioned video folder, the layout `folder:PATH` reads:
`clip_00000.mp4` beside its caption `clip_00000.txt` and its ground truth `clip_00000.json`,
and, asked for, the focus mask of one shape's objects, `clip_00000.mask.mp4` (data/folder.py).

A folder is how a user brings their own clips; writing `shapes` clips the same way gives a
small set with known truth to try a folder workflow on (a LoRA taught a new shape, say).
Each file is written atomically and an existing clip is kept, so a rerun finishes the set.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from einops import rearrange, repeat
from tqdm import tqdm

from filmstrip.atomic import write_text_atomic
from filmstrip.data.shapes import ShapesConfig, caption, ground_truth, render, sample_scene, truth_masks
from filmstrip.errors import InputError
from filmstrip.io import write_video


def export_shapes(
    cfg: ShapesConfig, out: str | Path, clips: int, require: str | None = None, focus: str | None = None
) -> int:
    """Write `clips` scenes of `cfg` (only those with an object of shape `require`, if given)
    to `out`, each with a focus mask of its objects of shape `focus` if given; returns how
    many clips the folder holds."""
    for option, shape in (("require", require), ("focus", focus)):
        if shape is not None and shape not in cfg.shapes:
            raise InputError(f"--{option} {shape!r} is not among the shapes drawn ({', '.join(cfg.shapes)})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    i = 0
    for k in tqdm(range(clips), desc=f"writing {out}", unit="clip"):
        while True:  # the scenes of the seed in order, skipping those without `require`
            scene = sample_scene(np.random.default_rng([cfg.seed, i]), cfg)
            i += 1
            if require is None or any(o.shape == require for o in scene.objects):
                break
            if i > 1000 * clips:
                raise InputError(f"no scene with a {require} among {i} draws")
        stem, truth = out / f"clip_{k:05d}", ground_truth(scene, cfg)
        mask = stem.with_suffix(".mask.mp4")
        if focus is not None and not mask.exists():  # before the truth, which marks a clip done
            objects = [o for o in truth["objects"] if o["shape"] == focus]
            grey = np.zeros((cfg.num_frames, cfg.height, cfg.width), np.float32)
            if objects:
                grey = truth_masks({**truth, "objects": objects}, cfg.height, cfg.width)
            pixels = torch.from_numpy(np.round(grey * 255).astype(np.uint8))
            write_video(mask, repeat(pixels, "t h w -> c t h w", c=3), fps=cfg.fps, lossless=True)
        if stem.with_suffix(".json").exists():
            continue
        # Lossless RGB H.264: through 4:2:0 YUV a 64-pixel clip comes back at 27-35 dB, its
        # small saturated shapes' edges smeared, and a model taught from it learns the smear.
        video = rearrange(render(scene, cfg), "t h w c -> c t h w")
        write_video(stem.with_suffix(".mp4"), video, fps=cfg.fps, lossless=True)
        write_text_atomic(stem.with_suffix(".txt"), caption(scene, cfg) + "\n")
        # The truth last: its file marks the clip done.
        write_text_atomic(stem.with_suffix(".json"), json.dumps(truth))
    return len(list(out.glob("clip_*.json")))
