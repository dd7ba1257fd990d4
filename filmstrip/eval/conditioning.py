"""Do given frames come out where they were given, and does the motion between them follow
the prompt? Measured on fresh `shapes` scenes, whose every object position is known.

Each measurement generates one video per scene from its caption and frames of its own
ground-truth clip, and reads object positions from pixels with the adherence detector
(eval/adherence.py), on the generated video and on the given frames alike, so the detector's
own bias cancels out of every position error:

* **image to video** (`mode="i2v"`): frame 0 given. First-frame PSNR against the given image
  (its VAE reconstruction is the ceiling), each object's start position error, and the
  prompt's colour, shape and direction adherence of the whole clip.
* **first + last frame** (`"first-last"`): frames 0 and T - 1 given. Position error of each
  object at both ends, and for objects that move straight (no bounce in the truth) whether
  the path between is monotone in x and y.
* **extension** (`"extend"`): the first `context` frames of the truth given, the rest drawn.
  Each object's direction over the new frames against the truth's over the same frames, and
  the seam: its speed across the join against its mean speed inside the given frames.

`guidance_grid` runs image to video over text scale x image scale and adds flicker: the
mean frame-to-frame change of the background (no object there in either frame, grown by two
pixels), in 8-bit grey levels; `shapes` backgrounds never move, so all of it is flicker.

Scenes come from `scene_seed`, not the training seeds (0 and 1), so neither the prompts
nor the images were seen in training.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch
from tqdm import tqdm

from filmstrip.data.shapes import ShapesConfig, caption, ground_truth, render, sample_scene
from filmstrip.errors import InputError
from filmstrip.eval.adherence import AdherenceConfig, detect, score, segment
from filmstrip.eval.metrics import psnr
from filmstrip.io.layout import to_float_cthw, to_uint8_thwc
from filmstrip.pipelines.conditions import ImageCondition, VideoCondition
from filmstrip.pipelines.generate import GenerateConfig, Pipeline, generate

MODES = ("i2v", "first-last", "extend")


@dataclass(frozen=True)
class ConditionSuite:
    num_scenes: int = 100
    frames: int = 17
    size: int = 64
    fps: float = 8.0
    scene_seed: int = 4242
    context: int = 9  # extension: frames of the truth given


def suite_scenes(cfg: ConditionSuite) -> list[dict]:
    """[{"caption", "truth", "video" (3, T, H, W) in [-1, 1]}] of fresh scenes."""
    shapes = ShapesConfig(
        num_frames=cfg.frames, height=cfg.size, width=cfg.size, fps=cfg.fps, seed=cfg.scene_seed
    )
    out = []
    for i in range(cfg.num_scenes):
        scene = sample_scene(np.random.default_rng([shapes.seed, i]), shapes)
        out.append(
            {
                "caption": caption(scene, shapes),
                "truth": ground_truth(scene, shapes),
                "video": to_float_cthw(render(scene, shapes)),
            }
        )
    return out


def tracks(video: torch.Tensor, fps: float) -> dict[str, list]:
    """colour -> per-frame centroid (x, y) or None, as the adherence detector sees them."""
    return {d.colour: d.track for d in detect(video, fps, AdherenceConfig(min_frames_fraction=1e-6))}


def _distance(a, b) -> float | None:
    return None if a is None or b is None else float(np.hypot(a[0] - b[0], a[1] - b[1]))


def _monotone(track: list, slack: float = 0.75) -> bool:
    """No step of x or y goes against the overall direction by more than `slack` pixels."""
    points = np.array([p for p in track if p is not None])
    if len(points) < 3:
        return False
    steps = np.diff(points, axis=0)
    overall = np.sign(points[-1] - points[0])
    against = -steps * overall  # > 0 where a step goes backwards
    return bool((against <= slack).all())


def _speeds(track: list) -> list[float | None]:
    return [_distance(a, b) for a, b in zip(track, track[1:], strict=False)]


def conditions_for(mode: str, video: torch.Tensor, cfg: ConditionSuite) -> list:
    if mode == "i2v":
        return [ImageCondition(video[:, 0], 0)]
    if mode == "first-last":
        return [ImageCondition(video[:, 0], 0), ImageCondition(video[:, -1], -1)]
    if mode == "extend":
        return [VideoCondition(video[:, : cfg.context], 0)]
    raise InputError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")


def background_flicker(video: torch.Tensor, grow: int = 2) -> float:
    """Mean |frame t+1 - frame t| over pixels with no object in either frame (dilated by
    `grow`), in 8-bit grey levels, for a (3, T, H, W) clip in [-1, 1]."""
    frames = to_uint8_thwc(video)
    frames = frames.numpy() if isinstance(frames, torch.Tensor) else frames
    kernel = np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)
    objects = [cv2.dilate((segment(f) >= 0).astype(np.uint8), kernel) > 0 for f in frames]
    changes = []
    for t in range(len(frames) - 1):
        still = ~(objects[t] | objects[t + 1])
        if still.any():
            diff = np.abs(frames[t + 1].astype(np.float32) - frames[t].astype(np.float32)).mean(-1)
            changes.append(float(diff[still].mean()))
    return float(np.mean(changes)) if changes else float("nan")


def score_row(mode: str, generated: torch.Tensor, item: dict, cfg: ConditionSuite) -> dict:
    """One scene's measurements (see the module docstring); positions in pixels."""
    given, truth = item["video"], item["truth"]
    gen_tracks, true_tracks = tracks(generated, cfg.fps), tracks(given, cfg.fps)
    row: dict = {"prompt": item["caption"], "objects": len(truth["objects"])}
    last = cfg.frames - 1
    if mode == "i2v":
        row["psnr_first"] = float(psnr(generated[None, :, 0], given[None, :, 0].to(generated.device))[0])
        row["flicker"] = background_flicker(generated)
        row.update(
            {k: v for k, v in score(generated, truth).items() if k in ("colour", "shape", "direction")}
        )
        row["start_error"] = [
            _distance(gen_tracks.get(c, [None])[0], t[0]) for c, t in true_tracks.items() if t[0] is not None
        ]
    elif mode == "first-last":
        row["end_error"] = [
            _distance(gen_tracks.get(c, [None] * cfg.frames)[k], t[k])
            for c, t in true_tracks.items()
            for k in (0, last)
            if t[k] is not None
        ]
        straight = [o["colour"] for o in truth["objects"] if not o["bounced"] and o["direction"] != "still"]
        row["monotone"] = [_monotone(gen_tracks[c]) for c in straight if c in gen_tracks and c in true_tracks]
    else:
        k = cfg.context - 1  # the last given frame
        new_fps_truth = {d.colour: d.direction for d in detect(given[:, k:], cfg.fps)}
        new_fps_gen = {d.colour: d.direction for d in detect(generated[:, k:], cfg.fps)}
        row["direction"] = [new_fps_gen.get(c) == d for c, d in new_fps_truth.items() if d != "still"]
        seams = []
        for c, t in true_tracks.items():
            inside = [s for s in _speeds(gen_tracks.get(c, t)[: cfg.context]) if s is not None]
            joins = _speeds(gen_tracks.get(c, [None] * cfg.frames)[k : k + 2])
            if len(inside) >= 3 and np.mean(inside) > 0.5 and joins[0] is not None:
                seams.append(joins[0] / float(np.mean(inside)))
        row["seam_ratio"] = seams
    return row


def run_conditioning(
    pipe: Pipeline,
    mode: str,
    cfg: ConditionSuite | None = None,
    gen: GenerateConfig | None = None,
    progress: bool = True,
) -> dict:
    """Generate and score every scene of the suite in `mode`; returns {"summary", "rows"}."""
    cfg = cfg or ConditionSuite()
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
    gen = gen or GenerateConfig(frames=cfg.frames, height=cfg.size, width=cfg.size)
    rows = []
    for i, item in enumerate(tqdm(suite_scenes(cfg), desc=mode, unit="video", disable=not progress)):
        conditions = conditions_for(mode, item["video"], cfg)
        video = generate(pipe, [item["caption"]], replace(gen, seed=gen.seed + i), conditions=conditions)[0]
        rows.append(score_row(mode, video.cpu(), item, cfg))
    return {"summary": summarize(mode, rows), "rows": rows}


def _flat(rows: list[dict], key: str) -> np.ndarray:
    values = [v for r in rows for v in (r[key] if isinstance(r[key], list) else [r[key]]) if v is not None]
    return np.array(values, dtype=np.float64)


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else float("nan")  # nothing measured: NaN, not a warning


def _p95(x: np.ndarray) -> float:
    return float(np.percentile(x, 95)) if len(x) else float("nan")


def _found(rows: list[dict], key: str) -> float:
    values = [v for r in rows for v in r[key]]
    return sum(v is not None for v in values) / max(1, len(values))


def summarize(mode: str, rows: list[dict]) -> dict[str, float]:
    """Means over scenes (accuracies) or over objects (errors, in pixels); `found`: the share
    of objects of the given frames that the detector finds at the same moment generated."""
    if mode == "i2v":
        start = _flat(rows, "start_error")
        return {
            "psnr_first": _mean(_flat(rows, "psnr_first")),
            "colour": _mean(_flat(rows, "colour")),
            "shape": _mean(_flat(rows, "shape")),
            "direction": _mean(_flat(rows, "direction")),
            "start_error_mean": _mean(start),
            "start_error_p95": _p95(start),
            "found": _found(rows, "start_error"),
            "flicker": _mean(_flat(rows, "flicker")),
        }
    if mode == "first-last":
        ends = _flat(rows, "end_error")
        return {
            "end_error_mean": _mean(ends),
            "end_error_p95": _p95(ends),
            "monotone": _mean(_flat(rows, "monotone")),
            "found": _found(rows, "end_error"),
        }
    seams = _flat(rows, "seam_ratio")
    return {
        "direction": _mean(_flat(rows, "direction")),
        "seam_within_20pct": _mean((np.abs(seams - 1) <= 0.2).astype(float)),
        "seam_ratio_median": float(np.median(seams)) if len(seams) else float("nan"),
        "objects_measured": float(len(seams)),
    }


def guidance_grid(
    pipe: Pipeline,
    text_scales: list[float],
    image_scales: list[float],
    cfg: ConditionSuite | None = None,
    gen: GenerateConfig | None = None,
    progress: bool = True,
) -> list[dict]:
    """Image to video at every (text scale, image scale): one summary row each."""
    gen = gen or GenerateConfig()
    out = []
    for text_scale in text_scales:
        for image_scale in image_scales:
            g = replace(gen, text_scale=text_scale, image_scale=image_scale)
            summary = run_conditioning(pipe, "i2v", cfg, g, progress)["summary"]
            out.append({"text_scale": text_scale, "image_scale": image_scale, **summary})
    return out
