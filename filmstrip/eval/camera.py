"""Where did the camera go? A pan-and-zoom path read back from a clip's background.

Between consecutive frames the background of a panning, zooming camera over a flat scene
moves by one similarity transform (data/camera.py): in pixels, with the frame centre as
origin,

    flow(p) = (r - 1) p + b,        r = scale_k / scale_{k-1},  b = scale_k (centre_{k-1} - centre_k)

Dense DIS flow (data/flow.py) on the background pixels (those the adherence evaluator gives
no palette colour, away from objects and borders) fits r and b by least squares; chaining
the pairs gives the path relative to frame 0. On rendered clips it finds the true path
within a few hundredths of a pixel per frame.

`run_camera_suite` asks a camera-conditioned model for each preset and for held-out random
paths on fresh prompts and reports the error per path, plus the objects' own directions
(screen tracks mapped back into the world by the path asked for).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
from tqdm import tqdm

from filmstrip.data.camera import PRESETS, CameraPath, preset_path, random_path
from filmstrip.data.flow import flow, grey
from filmstrip.data.shapes import ON_TEXTURE, ShapesConfig, caption, ground_truth, sample_scene
from filmstrip.eval.adherence import AdherenceConfig, _direction, detect, segment
from filmstrip.io.layout import to_uint8_thwc
from filmstrip.pipelines.generate import GenerateConfig, Pipeline, generate


def estimate_path(video) -> np.ndarray:
    """(T, 3) x, y (frame widths, heights), scale of the camera, relative to frame 0, read
    from a (C, T, H, W) clip's background."""
    frames = to_uint8_thwc(video)
    t_len, h, w, _ = frames.shape
    ii, jj = np.mgrid[0:h, 0:w].astype(np.float64)
    px, py = jj + 0.5 - w / 2, ii + 0.5 - h / 2
    border = np.zeros((h, w), bool)
    border[3:-3, 3:-3] = True
    kernel = np.ones((5, 5), np.uint8)
    background = [cv2.erode((segment(f) < 0).astype(np.uint8), kernel).astype(bool) & border for f in frames]
    path = np.zeros((t_len, 3))
    path[0, 2] = 1.0
    for k in range(1, t_len):
        f = flow(grey(frames[k - 1]), grey(frames[k])).astype(np.float64)
        m = background[k - 1]
        if m.sum() < 50:  # nothing to read: assume the camera held still
            path[k] = path[k - 1]
            continue
        # Unknowns (a, bx, by): fx = a px + bx, fy = a py + by.
        n = int(m.sum())
        design = np.zeros((2 * n, 3))
        design[:n, 0], design[:n, 1] = px[m], 1.0
        design[n:, 0], design[n:, 2] = py[m], 1.0
        target = np.concatenate([f[..., 0][m], f[..., 1][m]])
        keep = np.ones(2 * n, bool)
        for _ in range(3):  # refit without the pixels the fit explains worst (flow errors)
            (a, bx, by), *_ = np.linalg.lstsq(design[keep], target[keep], rcond=None)
            residual = np.abs(design @ np.array([a, bx, by]) - target)
            keep = residual <= max(3 * np.median(residual), 0.05)
        scale = path[k - 1, 2] * (1.0 + a)
        path[k] = (path[k - 1, 0] - bx / (scale * w), path[k - 1, 1] - by / (scale * h), scale)
    return path


def path_errors(estimated_t3: np.ndarray, wanted: CameraPath, width: int) -> dict[str, float]:
    """Mean error per frame step of the camera's motion in pixels (translation, at the
    frame's zoom) and of the zoom ratio; and the error at the last frame."""
    want = wanted.as_array()
    step_est, step_want = np.diff(estimated_t3, axis=0), np.diff(want, axis=0)
    px = np.hypot(*((step_est[:, :2] - step_want[:, :2]) * want[1:, 2:] * width).T)
    ratio_est = estimated_t3[1:, 2] / estimated_t3[:-1, 2]
    ratio_want = want[1:, 2] / want[:-1, 2]
    return {
        "px_per_frame": float(px.mean()),
        "scale_per_frame": float(np.abs(ratio_est - ratio_want).mean()),
        "final_px": float(np.hypot(*((estimated_t3[-1, :2] - want[-1, :2]) * width))),
        "final_scale": float(abs(estimated_t3[-1, 2] - want[-1, 2])),
    }


def world_direction(track, camera: CameraPath, size: int, fps: float) -> str:
    """The direction of an object's screen track once the camera's motion is taken out."""
    a = camera.as_array()
    world = [
        None if p is None else tuple((np.array(p) / size - 0.5) / a[k, 2] + 0.5 + a[k, :2])
        for k, p in enumerate(track)
    ]
    world = [None if p is None else (p[0] * size, p[1] * size) for p in world]
    return _direction(world, size, fps, AdherenceConfig())


@dataclass(frozen=True)
class CameraSuiteConfig:
    prompts_per_path: int = 10
    random_paths: int = 10
    path_seed: int = 99  # held-out random paths: not a seed training drew paths from
    scene_seed: int = 2718
    frames: int = 17
    size: int = 64
    fps: float = 8.0


def run_camera_suite(
    pipe: Pipeline, cfg: CameraSuiteConfig, gen: GenerateConfig, batch_size: int = 10
) -> dict:
    """{"paths": {name: mean errors and object direction accuracy}, "rows"}: every preset
    but "static", then `random_paths` held-out random paths ("random-k"), each on the same
    fresh prompts (textured backgrounds, so there is a background to read)."""
    shapes = ShapesConfig(
        num_frames=cfg.frames, height=cfg.size, width=cfg.size, fps=cfg.fps,
        seed=cfg.scene_seed, background="textured",
    )  # fmt: skip
    rng = np.random.default_rng(cfg.path_seed)
    paths = {name: preset_path(name, cfg.frames, cfg.fps) for name in PRESETS if name != "static"}
    paths |= {f"random-{k}": random_path(rng, cfg.frames, cfg.fps) for k in range(cfg.random_paths)}
    rows = []
    for name, path in tqdm(paths.items(), desc="camera paths", unit="path"):
        # Scenes laid out for this path, so objects stay in the picture as in training.
        scenes = [
            replace(sample_scene(np.random.default_rng([shapes.seed, i]), shapes), camera=None)
            for i in range(cfg.prompts_per_path)
        ]
        scenes = [_framed(s, path, shapes, i) for i, s in enumerate(scenes)]
        for start in range(0, len(scenes), batch_size):
            chunk = scenes[start : start + batch_size]
            # A camera is read from the background, so every prompt asks for a textured one
            # (training captions say so a quarter of the time; a plain one shows no motion).
            texts = [_on_texture(caption(s, shapes)) for s in chunk]
            videos = generate(pipe, texts, replace(gen, seed=gen.seed + start), camera=path)
            for scene, video in zip(chunk, videos, strict=True):
                errors = path_errors(estimate_path(video), path, cfg.size)
                truth = ground_truth(scene, shapes)
                found = {d.colour: d for d in detect(video, cfg.fps)}
                hits = [
                    world_direction(found[o["colour"]].track, path, cfg.size, cfg.fps) == o["direction"]
                    for o in truth["objects"]
                    if o["colour"] in found
                ]
                rows.append({"path": name, **errors, "direction": float(np.mean(hits)) if hits else 0.0})
    keys = ("px_per_frame", "scale_per_frame", "final_px", "final_scale", "direction")
    summary = {
        name: {k: float(np.mean([r[k] for r in rows if r["path"] == name])) for k in keys} for name in paths
    }
    return {"paths": summary, "rows": rows}


def _on_texture(text: str) -> str:
    return text if text.endswith(ON_TEXTURE) else f"{text} {ON_TEXTURE}"


def _framed(scene, path: CameraPath, shapes: ShapesConfig, i: int):
    """The scene redrawn with `path` as its camera: starts inside what the path always sees."""
    rng = np.random.default_rng([shapes.seed, i, 1])
    (x0, x1), (y0, y1) = path.visible()
    objects = tuple(
        replace(
            o,
            start=(
                float(rng.uniform(x0 + 0.2 * (x1 - x0), x1 - 0.2 * (x1 - x0))),
                float(rng.uniform(y0 + 0.2 * (y1 - y0), y1 - 0.2 * (y1 - y0))),
            ),
        )
        for o in scene.objects
    )
    return replace(scene, objects=objects, camera=path)
