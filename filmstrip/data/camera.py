"""A camera that pans and zooms over a 2D scene: paths, presets and their checks.

The scene lives in world coordinates: the view of frame 0 is the unit square (x right,
y down, in frame widths and heights). On frame k the camera looks at a window centred at
(0.5 + x_k, 0.5 + y_k) of size 1 / scale_k; a world point w shows on screen at

    u = (w - centre_k) * scale_k + 0.5        (normalised screen coordinates)

so x_k, y_k and scale_k say everything about the picture: for a camera that only pans and
zooms over a flat scene the image moves by one similarity transform per frame, and three
numbers per frame are a complete description. Plücker ray embeddings (one 6-vector per
pixel) describe a perspective camera that also turns and moves in depth, where each pixel's
ray differs; here they would carry the same three numbers at more cost.

Paths are per frame (x, y, scale) relative to frame 0 (0, 0, 1). `camera_features` turns a
path into the model's condition: x and y in units of `PAN_UNIT`, log scale in units of
log(`ZOOM_UNIT`), so the presets sit at about +-1 by the end of a two-second clip.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from filmstrip.errors import InputError

PAN_SPEED = 0.12  # frame widths (heights) per second, the presets' pan
ZOOM_RATE = math.log(1.4) / 2.0  # log scale per second: x1.4 over two seconds
PAN_UNIT = 0.25  # the condition's x, y unit (frame widths)
ZOOM_UNIT = 1.4  # the condition's zoom unit
PRESETS = ("pan-left", "pan-right", "pan-up", "pan-down", "zoom-in", "zoom-out", "static")


@dataclass(frozen=True)
class CameraPath:
    """Per-frame view centre offsets from frame 0's (frame widths, heights) and zoom."""

    x: tuple[float, ...]
    y: tuple[float, ...]
    scale: tuple[float, ...]

    def __post_init__(self):
        for name in ("x", "y", "scale"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        if not (len(self.x) == len(self.y) == len(self.scale)) or not self.x:
            raise InputError("a camera path needs x, y and scale for every frame, as many of each")
        values = np.array([self.x, self.y, self.scale])
        if not np.isfinite(values).all():
            raise InputError("a camera path holds NaN or Inf")
        if min(self.scale) < 0.5 or max(self.scale) > 2.0:
            raise InputError(
                f"camera zoom must stay in [0.5, 2] (1 = frame 0's view), got {min(self.scale):.3g}..{max(self.scale):.3g}"
            )
        if max(map(abs, self.x + self.y)) > 0.5:
            raise InputError("a camera may move at most half a frame from where it starts")

    def __len__(self) -> int:
        return len(self.x)

    def as_array(self) -> np.ndarray:
        """(T, 3): x, y, scale per frame."""
        return np.array([self.x, self.y, self.scale], dtype=np.float64).T

    def visible(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """The world box seen on every frame (within frame 0's view): ((x0, x1), (y0, y1))."""
        a = self.as_array()
        half = 0.5 / a[:, 2]
        x0, x1 = max(0.0, float(np.max(0.5 + a[:, 0] - half))), min(1.0, float(np.min(0.5 + a[:, 0] + half)))
        y0, y1 = max(0.0, float(np.max(0.5 + a[:, 1] - half))), min(1.0, float(np.min(0.5 + a[:, 1] + half)))
        return (x0, x1), (y0, y1)

    def to_json(self) -> list[dict]:
        return [{"x": x, "y": y, "scale": s} for x, y, s in zip(self.x, self.y, self.scale, strict=True)]


def preset_path(name: str, frames: int, fps: float) -> CameraPath:
    """A named path over `frames` frames at `fps`: a steady pan or zoom, or a still camera.
    pan-left moves the camera left, so the scene slides right on screen."""
    if name not in PRESETS:
        raise InputError(f"unknown camera preset {name!r}; use one of {', '.join(PRESETS)} or a path.json")
    t = np.arange(frames) / fps
    zero, one = np.zeros(frames), np.ones(frames)
    step = PAN_SPEED * t
    x, y, scale = {
        "pan-left": (-step, zero, one),
        "pan-right": (step, zero, one),
        "pan-up": (zero, -step, one),
        "pan-down": (zero, step, one),
        "zoom-in": (zero, zero, np.exp(ZOOM_RATE * t)),
        "zoom-out": (zero, zero, np.exp(-ZOOM_RATE * t)),
        "static": (zero, zero, one),
    }[name]
    return CameraPath(tuple(x), tuple(y), tuple(scale))


def random_path(rng: np.random.Generator, frames: int, fps: float) -> CameraPath:
    """A steady pan in a random direction at up to 1.25x the preset speed, a random zoom rate,
    or both: the training distribution around the presets."""
    t = np.arange(frames) / fps
    kind = rng.integers(3)  # 0: pan, 1: zoom, 2: both
    vx, vy, rate = 0.0, 0.0, 0.0
    if kind in (0, 2):
        angle, speed = rng.uniform(0, 2 * math.pi), rng.uniform(0.3, 1.25) * PAN_SPEED
        vx, vy = speed * math.cos(angle), speed * math.sin(angle)
    if kind in (1, 2):
        rate = rng.uniform(-1.25, 1.25) * ZOOM_RATE
    return CameraPath(tuple(vx * t), tuple(vy * t), tuple(np.exp(rate * t)))


def read_path(path: str | Path, frames: int) -> CameraPath:
    """A path.json: a list of one entry per frame, {"x": .., "y": .., "scale": ..} or
    [x, y, scale]; checked, with one sentence on what is wrong."""
    path = Path(path)
    try:
        entries = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such camera path file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not JSON ({e})") from None
    if not isinstance(entries, list) or not entries:
        raise InputError(f"{path}: a camera path is a JSON list with one entry per frame")
    rows = []
    for k, entry in enumerate(entries):
        if isinstance(entry, dict):
            missing = {"x", "y", "scale"} - set(entry)
            if missing:
                raise InputError(f"{path}: frame {k} lacks {', '.join(sorted(missing))}")
            row = (entry["x"], entry["y"], entry["scale"])
        elif isinstance(entry, list) and len(entry) == 3:
            row = tuple(entry)
        else:
            raise InputError(f'{path}: frame {k} is neither {{"x", "y", "scale"}} nor [x, y, scale]')
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in row):
            raise InputError(f"{path}: frame {k} holds a value that is not a number: {entry}")
        rows.append(row)
    if len(rows) != frames:
        raise InputError(
            f"{path}: {len(rows)} camera entries for a video of {frames} frames; give one per frame"
        )
    try:
        return CameraPath(*zip(*rows, strict=True))
    except InputError as e:
        raise InputError(f"{path}: {e}") from None


def camera_features(path_t3: np.ndarray) -> np.ndarray:
    """(T, 3) x, y, scale -> the condition's (T, 3): x / PAN_UNIT, y / PAN_UNIT, log scale / log ZOOM_UNIT."""
    a = np.asarray(path_t3, dtype=np.float64)
    return np.stack([a[:, 0] / PAN_UNIT, a[:, 1] / PAN_UNIT, np.log(a[:, 2]) / math.log(ZOOM_UNIT)], axis=1)
