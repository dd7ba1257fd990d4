"""Drift over a long `shapes` video: does the minute's last window still show the prompt?

A long video is cut into windows of `window` frames (17: two seconds at 8 fps, the length
the models train on), and each window is scored from pixels by the adherence evaluator
(adherence.detect) against the prompt's objects:

* colour, shape and count, as for a short clip;
* direction, up to bounces: over a minute every moving object meets a wall, so "moves
  right" may be seen moving left; the window passes when the object moves along one of the
  directions its prompt direction can turn into by bouncing (left or right for "right"; the
  four diagonals for "up-right"; "still" stays still);
* size kept: the object's median blob area within `size_tolerance` of the first window's;
* speed kept: its median speed between frames within `speed_tolerance` of the first
  window's (objects move at constant speed between bounces, and a bounce keeps the speed).

The video's score for a stretch (the first or last `span` seconds) is the mean over its
windows; a window's accuracy is the mean of the six checks. Validated on real long clips,
where it scores ~100% (tests/test_drift.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from filmstrip.data.motion import DIRECTIONS
from filmstrip.eval.adherence import AdherenceConfig, DetectedObject, detect

CHECKS = ("colour", "shape", "count", "direction", "size", "speed")


@dataclass(frozen=True)
class DriftConfig:
    window: int = 17  # frames per scored window
    span: float = 10.0  # seconds: the first and the last stretch compared
    size_tolerance: float = 0.35  # relative change of blob area still counted as "kept"
    speed_tolerance: float = 0.4  # relative change of speed still counted as "kept"
    adherence: AdherenceConfig = AdherenceConfig()


def bounce_directions(direction: str) -> set[str]:
    """Every direction `direction` can turn into by bouncing off walls (itself included)."""
    if direction == "still":
        return {"still"}
    dx, dy = DIRECTIONS[direction]
    reachable = {(sx * dx, sy * dy) for sx in (1, -1) for sy in (1, -1)}
    return {name for name, v in DIRECTIONS.items() if tuple(v) in reachable}


def _median_area(obj: DetectedObject) -> float:
    return float(np.median([a for a in obj.areas if a is not None]))


def _median_speed(obj: DetectedObject, width: int, fps: float) -> float:
    """Median centroid speed between consecutive found frames, frame widths per second."""
    steps = [
        np.hypot(p1[0] - p0[0], p1[1] - p0[1])
        for p0, p1 in zip(obj.track, obj.track[1:], strict=False)
        if p0 is not None and p1 is not None
    ]
    return float(np.median(steps)) * fps / width if steps else 0.0


def _kept(value: float, reference: float, tolerance: float, floor: float) -> bool:
    """Within a relative tolerance of the reference; two values both under `floor` agree."""
    if max(value, reference) < floor:
        return True
    return abs(value - reference) <= tolerance * max(reference, floor)


def window_scores(
    video_cthw, objects: list[dict], fps: float = 8.0, cfg: DriftConfig | None = None
) -> list[dict]:
    """Per window of a (C, T, H, W) video: {start, colour, shape, count, direction, size,
    speed, accuracy}, each in [0, 1]. `objects`: the prompt's [{colour, shape, direction}]."""
    cfg = cfg or DriftConfig()
    width = video_cthw.shape[-1]
    frames = video_cthw.shape[1]
    reference: dict[str, tuple[float, float]] = {}
    rows = []
    starts = list(range(0, frames - cfg.window + 1, cfg.window - 1))
    if starts and starts[-1] != frames - cfg.window:
        starts.append(frames - cfg.window)  # the last window ends on the last frame
    for start in starts:
        found = {d.colour: d for d in detect(video_cthw[:, start : start + cfg.window], fps, cfg.adherence)}
        checks = {name: [] for name in CHECKS}
        for o in objects:
            d = found.get(o["colour"])
            checks["colour"].append(d is not None)
            if d is None:
                continue
            area, speed = _median_area(d), _median_speed(d, width, fps)
            ref_area, ref_speed = reference.setdefault(o["colour"], (area, speed))
            checks["shape"].append(d.shape == o["shape"])
            checks["direction"].append(d.direction in bounce_directions(o["direction"]))
            checks["size"].append(_kept(area, ref_area, cfg.size_tolerance, 0.0))
            still = cfg.adherence.still_speed
            checks["speed"].append(_kept(speed, ref_speed, cfg.speed_tolerance, still))
        wanted = {o["colour"] for o in objects}
        checks["count"] = [set(found) == wanted]
        row = {"start": start, **{k: float(np.mean(v)) if v else 0.0 for k, v in checks.items()}}
        row["accuracy"] = float(np.mean([row[k] for k in CHECKS]))
        rows.append(row)
    return rows


def first_and_last(
    rows: list[dict], frames: int, fps: float, cfg: DriftConfig | None = None
) -> dict[str, dict]:
    """Mean scores over the windows inside the first and inside the last `span` seconds."""
    cfg = cfg or DriftConfig()
    span = round(cfg.span * fps)
    first = [r for r in rows if r["start"] + cfg.window <= span + 1]
    last = [r for r in rows if r["start"] >= frames - span - 1]
    return {
        name: {k: float(np.mean([r[k] for r in part])) for k in (*CHECKS, "accuracy")}
        for name, part in (("first", first), ("last", last))
        if part
    }
