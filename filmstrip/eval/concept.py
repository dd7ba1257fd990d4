"""Has a model learned a new shape? The `shapes` adherence check on scenes that hold it.

A LoRA is taught a shape the base model never saw (a star: `shapes.EXTRA_SHAPES`) from a few
dozen clips. This draws fresh scenes (a seed no training clip came from) in which at least
one object is that shape, generates each caption and scores the video with the evaluator
that also looks for the new shape (adherence.AdherenceConfig.shapes). The objects of the
new shape are scored on their own too: is a star drawn where the prompt asks for one, in
its colour, moving its way?
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from tqdm import tqdm

from filmstrip.data.shapes import SHAPES, Scene, ShapesConfig, caption, ground_truth, render, sample_scene
from filmstrip.errors import InputError
from filmstrip.eval.adherence import AdherenceConfig, score
from filmstrip.io.layout import to_float_cthw
from filmstrip.pipelines.denoise import decode, encode
from filmstrip.pipelines.generate import GenerateConfig, Pipeline, generate


@dataclass(frozen=True)
class ConceptConfig:
    shape: str = "star"
    num_prompts: int = 50
    samples: int = 1  # videos per prompt, each from its own noise
    sizes: tuple[str, ...] = ("large",)  # as the concept was taught (see ShapesConfig.sizes)
    scene_seed: int = 4242  # fresh scenes: not a seed `data export` or training used
    frames: int = 17
    size: int = 64
    fps: float = 8.0


def _scenes(cfg: ConceptConfig) -> tuple[list[Scene], ShapesConfig]:
    """`num_prompts` fresh scenes, each with an object of `cfg.shape`, and how they render."""
    shapes = ShapesConfig(
        num_frames=cfg.frames, height=cfg.size, width=cfg.size, fps=cfg.fps, seed=cfg.scene_seed,
        shapes=tuple(dict.fromkeys((*SHAPES, cfg.shape))), sizes=cfg.sizes,
    )  # fmt: skip
    out, i = [], 0
    while len(out) < cfg.num_prompts:
        scene = sample_scene(np.random.default_rng([shapes.seed, i]), shapes)
        i += 1
        if any(o.shape == cfg.shape for o in scene.objects):
            out.append(scene)
    return out, shapes


def concept_prompts(cfg: ConceptConfig) -> list[tuple[str, dict]]:
    """(caption, truth) of `num_prompts` fresh scenes, each with an object of `cfg.shape`."""
    scenes, shapes = _scenes(cfg)
    return [(caption(scene, shapes), ground_truth(scene, shapes)) for scene in scenes]


def _judge(cfg: ConceptConfig) -> AdherenceConfig:
    return AdherenceConfig(shapes=tuple(dict.fromkeys((*SHAPES, cfg.shape))))


def _row(video, text: str, truth: dict, sample: int, cfg: ConceptConfig) -> dict:
    """The whole prompt's scores, and the new shape's objects' alone."""
    new, judge = [o for o in truth["objects"] if o["shape"] == cfg.shape], _judge(cfg)
    alone = score(video, {**truth, "objects": new}, cfg=judge)
    return {
        "prompt": text, "sample": sample, **score(video, truth, cfg=judge),
        "concept": {k: alone[k] for k in ("colour", "shape", "direction")},
    }  # fmt: skip


def _summary(rows: list[dict]) -> dict:
    mean = lambda key, part=None: float(np.mean([(r[part] if part else r)[key] for r in rows]))  # noqa: E731
    metrics = ("colour", "shape", "direction", "count", "consistency")
    return {
        "prompt": {k: mean(k) for k in metrics},
        "concept": {k: mean(k, "concept") for k in ("colour", "shape", "direction")},
        "rows": rows,
    }


def run_concept(pipe: Pipeline, cfg: ConceptConfig, gen: GenerateConfig, batch_size: int = 10) -> dict:
    """{"prompt": mean whole-prompt scores, "concept": mean scores of the new-shape objects
    alone (colour, shape, direction), "rows": one per video}."""
    if cfg.samples < 1:
        raise InputError(f"samples must be >= 1, got {cfg.samples}")
    jobs = [(j, text, truth) for j in range(cfg.samples) for text, truth in concept_prompts(cfg)]
    rows = []
    for start in tqdm(range(0, len(jobs), batch_size), desc=f"concept {cfg.shape}", unit="batch"):
        chunk = jobs[start : start + batch_size]
        videos = generate(pipe, [c[1] for c in chunk], replace(gen, seed=gen.seed + start))
        rows += [
            _row(video, text, truth, j, cfg) for (j, text, truth), video in zip(chunk, videos, strict=True)
        ]
    return _summary(rows)


@torch.no_grad()
def concept_ceiling(pipe: Pipeline, cfg: ConceptConfig, batch_size: int = 10) -> dict:
    """What a perfect model scores on the same scenes through `pipe`'s VAE: each scene's own
    clip, encoded and decoded, scored as `run_concept` scores a generated one. A small shape
    comes back from the VAE rounder than it went in, so this bounds what any model decoded
    by it can reach on the new shape."""
    scenes, shapes = _scenes(cfg)
    rows = []
    for start in range(0, len(scenes), batch_size):
        chunk = scenes[start : start + batch_size]
        clips = torch.stack([to_float_cthw(render(scene, shapes)) for scene in chunk])
        passed = decode(pipe, encode(pipe, clips), clips.shape[2]).cpu()
        rows += [
            _row(video, caption(scene, shapes), ground_truth(scene, shapes), 0, cfg)
            for scene, video in zip(chunk, passed, strict=True)
        ]
    return _summary(rows)
