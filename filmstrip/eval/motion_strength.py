"""Does `--motion` set how fast things move? Speed measured from pixels, level by level.

For each motion level, the same fresh `shapes` prompts (every object moving; a seed no
training clip came from) are generated with that strength, and every object the evaluator
finds (adherence.detect) is tracked: its speed is the mean distance its centre moves from
one frame to the next, in frame short sides per second, the unit of the motion condition
(data/motion.py). A model that obeys gives a curve that rises with the level, near
`level * FULL_SPEED`; the direction each object takes is scored too, since speed must not
cost the prompt. A last row, level None, is the model left to choose its own speed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from tqdm import tqdm

from filmstrip.data.motion import FULL_SPEED
from filmstrip.data.shapes import ShapesConfig, caption, ground_truth, sample_scene
from filmstrip.errors import InputError
from filmstrip.eval.adherence import detect, score
from filmstrip.pipelines.generate import GenerateConfig, Pipeline, generate


@dataclass(frozen=True)
class MotionSuiteConfig:
    levels: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    num_prompts: int = 40
    scene_seed: int = 777
    frames: int = 17
    size: int = 64
    fps: float = 8.0


def track_speed(track: list[tuple[float, float] | None], side: int, fps: float) -> float | None:
    """Mean centre displacement between consecutive frames where both are found, in short
    sides per second; None with fewer than two such pairs."""
    steps = [
        np.hypot(b[0] - a[0], b[1] - a[1])
        for a, b in zip(track, track[1:], strict=False)
        if a is not None and b is not None
    ]
    return float(np.mean(steps)) * fps / side if len(steps) >= 2 else None


def suite_prompts(cfg: MotionSuiteConfig) -> list[tuple[str, dict]]:
    """(caption, truth) of fresh scenes in which every object moves."""
    shapes = ShapesConfig(
        num_frames=cfg.frames, height=cfg.size, width=cfg.size, fps=cfg.fps,
        seed=cfg.scene_seed, still_probability=0.0,
    )  # fmt: skip
    scenes = [sample_scene(np.random.default_rng([shapes.seed, i]), shapes) for i in range(cfg.num_prompts)]
    return [(caption(s, shapes), ground_truth(s, shapes)) for s in scenes]


def run_motion_suite(
    pipe: Pipeline, cfg: MotionSuiteConfig, gen: GenerateConfig, batch_size: int = 10
) -> dict:
    """{"levels": [{"level", "asked", "speed", "direction", "objects"} per level, then level
    None], "rows"}: the mean measured speed of the objects found at each level (`asked`:
    level * FULL_SPEED)."""
    if not cfg.levels or any(not 0.0 <= m <= 1.0 for m in cfg.levels):
        raise InputError(f"motion levels are in [0, 1], got {cfg.levels}")
    prompts = suite_prompts(cfg)
    rows = []
    levels = (*cfg.levels, None)
    jobs = [(m, k) for m in levels for k in range(0, len(prompts), batch_size)]
    for level, start in tqdm(jobs, desc="motion levels", unit="batch"):
        chunk = prompts[start : start + batch_size]
        # The same seeds at every level: only the motion strength differs.
        videos = generate(pipe, [c[0] for c in chunk], replace(gen, seed=gen.seed + start, motion=level))
        for (text, truth), video in zip(chunk, videos, strict=True):
            speeds = [track_speed(d.track, cfg.size, cfg.fps) for d in detect(video, cfg.fps)]
            speeds = [s for s in speeds if s is not None]
            rows.append({
                "level": level, "prompt": text, "speeds": speeds,
                "direction": score(video, truth)["direction"],
            })  # fmt: skip
    out = []
    for level in levels:
        mine = [r for r in rows if r["level"] == level]
        speeds = [s for r in mine for s in r["speeds"]]
        out.append({
            "level": level, "asked": None if level is None else level * FULL_SPEED,
            "speed": float(np.mean(speeds)) if speeds else float("nan"),
            "direction": float(np.mean([r["direction"] for r in mine])), "objects": len(speeds),
        })  # fmt: skip
    return {"levels": out, "rows": rows}
