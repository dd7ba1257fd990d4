"""Does a generated `shapes` video show what its prompt asked for? Measured from pixels alone.

For each frame: every pixel bright and saturated enough to stand out from the dark
background is given the nearest palette colour (`COLOURS`); per colour, the largest
connected blob is that object. Then, per object:

* **shape** from two scale-free features of the blob that survive blur (which rounds
  corners and eats thin tips, so simpler ones such as the share of the bounding box that
  is filled do not): how low its centre of mass sits in its box (2/3 for an upward
  triangle, 1/2 for a circle or a square), and its extent along the diagonals over its
  extent along the axes (sqrt 2 for a square, 1 for a circle). A majority vote over frames
  absorbs what is left of blur and partial occlusion. A star (an extra shape, looked for only
  when `AdherenceConfig.shapes` lists it) is told by its outline's five-fold harmonic
  (`outline_harmonics`, `is_star`): the radius of the object's coverage as a function of angle about its
  centre rises and falls five times around a star, which blur flattens but does not remove
  (0.13 of the mean radius drawn, 0.07-0.12 through the bundled VAE, under 0.01 for the
  other shapes drawn or decoded);
* **direction** from the centroid track before its first bounce (a reversal of x or y
  velocity), snapped to the nearest of 8 compass directions, or "still" when it barely moves;
* **consistency**: the share of frames on which the object is found with its majority shape.

With `AdherenceConfig(subpixel=True)` a track holds each blob's coverage-weighted centre
(`coverage`, `coverage_centre`) instead of its pixels' centroid: measures of position (eval/conditioning.py)
use it; prompt adherence keeps the plain centroid, which its compass directions do not need.

`score(video, truth)` compares that against the prompt's objects (colour, shape, direction)
and the object count. `truth` is the `ground_truth(...)` dict of a scene, or any dict with
`objects: [{colour, shape, direction}, ...]`. The evaluator is validated on real dataset
clips, where it must score ~100% (tests/test_eval_adherence.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from filmstrip.data.shapes import COLOURS, SHAPES
from filmstrip.io.layout import to_uint8_thwc

_PALETTE = np.array(list(COLOURS.values()), dtype=np.float32)
_NAMES = list(COLOURS)
# Decision thresholds, each halfway between the ideal values of the shapes it separates:
# mass centre at 2/3 (triangle) vs 1/2 of the box height; diagonal/axis extent sqrt(2) for a
# square whose corners blur rounds to ~1.3, vs 1.0 for a circle.
_TRIANGLE_CENTRE = 0.58
_SQUARE_DIAGONAL = 1.15
# A star's five-fold share of its outline, against the other shapes' (in full view): 5th
# percentile 0.079 through the bundled VAE, against a 95th percentile of 0.011 (docs/RESULTS.md,
# session 26).
_STAR_HARMONIC = 0.04
_COMPASS = ["right", "up-right", "up", "up-left", "left", "down-left", "down", "down-right"]


@dataclass(frozen=True)
class AdherenceConfig:
    min_brightness: int = 110  # max channel; backgrounds stay below ~75
    max_colour_distance: float = 70.0  # RGB distance to the nearest palette colour
    min_area_fraction: float = 0.006  # of the frame, per blob (a small shape covers ~0.023)
    min_frames_fraction: float = 0.5  # an object must be found on at least this share of frames
    still_speed: float = 0.03  # frame widths per second below which an object is "still"
    shapes: tuple[str, ...] = SHAPES  # the shapes an object may be called: add "star" to look for it
    # Track each blob's coverage-weighted centre (`coverage_centre`) rather than the centre of
    # its pixels: a tenth of the error on rendered clips, for measures of position.
    subpixel: bool = False


@dataclass
class DetectedObject:
    colour: str
    shape: str
    direction: str
    frames_found: int
    consistency: float  # share of frames found with the majority shape
    track: list[tuple[float, float] | None] = field(default_factory=list)
    areas: list[int | None] = field(default_factory=list)  # blob pixels per frame


def segment(frame_hw3: np.ndarray, cfg: AdherenceConfig | None = None) -> np.ndarray:
    """Palette index per pixel, -1 for background."""
    cfg = cfg or AdherenceConfig()
    pixels = frame_hw3.reshape(-1, 3).astype(np.float32)
    dist = np.linalg.norm(pixels[:, None, :] - _PALETTE[None], axis=-1)
    nearest = dist.argmin(1)
    ok = (dist[np.arange(len(pixels)), nearest] < cfg.max_colour_distance) & (
        pixels.max(1) >= cfg.min_brightness
    )
    return np.where(ok, nearest, -1).reshape(frame_hw3.shape[:2])


def _largest_blob(mask: np.ndarray, min_area: float):
    """(area, shape, centroid, blob mask) of the largest connected blob, or None if it is too small."""
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return None
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    area = stats[k, cv2.CC_STAT_AREA]
    if area < min_area:
        return None
    blob = labels == k
    ys, xs = np.nonzero(blob)
    return area, _shape_of(xs, ys), tuple(centroids[k]), blob


_GROW = np.ones((3, 3), np.uint8)


def coverage(frame_hw3: np.ndarray, labels: np.ndarray, index: int, blob: np.ndarray) -> np.ndarray:
    """float (H, W) in [0, 1]: how much of each pixel near a blob its object covers, from where
    the pixel's colour lies between the local background's (the median of a ring around the
    blob) and the palette colour. Pixels of other objects count 0."""
    near = cv2.dilate(blob.astype(np.uint8), _GROW, iterations=2) > 0
    ring = (cv2.dilate(near.astype(np.uint8), _GROW, iterations=2) > 0) & ~near & (labels < 0)
    pixels = frame_hw3.astype(np.float32)
    background = np.median(pixels[ring], axis=0) if ring.sum() >= 8 else np.zeros(3, np.float32)
    span = _PALETTE[index] - background
    cover = np.clip((pixels - background) @ span / max(float(span @ span), 1.0), 0.0, 1.0)
    # Texture in the background reads as a little coverage: below a tenth, none.
    cover = np.where(near & ((labels < 0) | (labels == index)) & (cover >= 0.1), cover, 0.0)
    # A background as bright as the object leaves nothing to weigh: the blob itself, then.
    return cover if cover.any() else blob.astype(np.float64)


def foreground(frame_hw3: np.ndarray, cfg: AdherenceConfig | None = None) -> np.ndarray:
    """bool (H, W): pixels at least half covered by an object. Thresholding colours drops an
    object's blurred edge (rendered clips' own masks then score an IoU of 0.94 against the
    truth); each object's `coverage` at 0.5 follows the edge through blur (0.997)."""
    labels = segment(frame_hw3, cfg)
    mask = labels >= 0
    for index in np.unique(labels[mask]):
        pixels = labels == index
        edge = cv2.dilate(pixels.astype(np.uint8), _GROW) > 0  # a blurred edge is a pixel wide
        mask |= edge & (coverage(frame_hw3, labels, int(index), pixels) >= 0.5)
    return mask


def coverage_centre(cover_hw: np.ndarray) -> tuple[float, float]:
    """(x, y) of an object weighted by its `coverage`. Thresholding counts an edge pixel wholly
    in or out, so the plain centroid moves in steps of up to half a pixel as the object slides
    (0.15 px mean error on rendered clips); weighted, 0.02 px."""
    ys, xs = np.nonzero(cover_hw)
    w = cover_hw[ys, xs]
    return float((w * xs).sum() / w.sum()), float((w * ys).sum() / w.sum())


# Each pixel split 4 x 4, so that a sector of the outline gets the parts of pixels inside it.
_SUB = (np.arange(4) + 0.5) / 4 - 0.5
_SUB_X, _SUB_Y = np.repeat(_SUB, 4), np.tile(_SUB, 4)


def outline_harmonics(cover_hw: np.ndarray, sectors: int = 36) -> np.ndarray:
    """|Fourier coefficients| 0..sectors/2 over the mean of an object's radius as a function of
    angle about its centre: the radius of each sector from the coverage it holds (a wedge of
    angle a and radius r holds a r^2 / 2). Scale-free; blur lowers them without moving them."""
    ys, xs = np.nonzero(cover_hw)
    w = cover_hw[ys, xs]
    cx, cy = coverage_centre(cover_hw)
    angle = np.arctan2(ys[:, None] + _SUB_Y - cy, xs[:, None] + _SUB_X - cx).ravel()
    sector = ((angle + np.pi) / (2 * np.pi) * sectors).astype(int) % sectors
    held = np.bincount(sector, np.repeat(w / 16, 16), sectors)
    radius = np.sqrt(2 * held / (2 * np.pi / sectors))
    return np.abs(np.fft.rfft(radius)) / max(radius.sum(), 1e-9)


def is_star(cover_hw: np.ndarray) -> bool:
    """Five points: the fifth harmonic of the outline is large, and the largest of the first
    eight (an object cut by another in front has a dent, which spreads over all of them:
    through the VAE 0.3% of such frames pass, and every star in full view)."""
    h = outline_harmonics(cover_hw)[1:9]
    return bool(h[4] > _STAR_HARMONIC and h[4] >= h.max())


def _shape_of(xs: np.ndarray, ys: np.ndarray) -> str:
    height = ys.max() - ys.min() + 1
    centre = (ys.mean() - ys.min() + 0.5) / height  # 0 = top of the box, 1 = bottom
    if centre > _TRIANGLE_CENTRE:
        return "triangle"
    # Extents measured pixel edge to pixel edge: a pixel spans 1 along an axis, sqrt(2) along a diagonal.
    axis = (xs.max() - xs.min() + 1 + height) / 2
    s, d = xs + ys, xs - ys
    diagonal = (s.max() - s.min() + d.max() - d.min()) / (2 * math.sqrt(2)) + math.sqrt(2)
    return "square" if diagonal / axis > _SQUARE_DIAGONAL else "circle"


def _direction(track: list[tuple[float, float] | None], width: int, fps: float, cfg: AdherenceConfig) -> str:
    points = [(t, p) for t, p in enumerate(track) if p is not None]
    if len(points) < 2:
        return "still"
    # Keep the track up to the first reversal of x or y motion (a bounce off a wall).
    steps = [
        (np.subtract(p1, p0) / (t1 - t0), t1) for (t0, p0), (t1, p1) in zip(points, points[1:], strict=False)
    ]
    end = points[-1][0]
    sign = np.sign(steps[0][0]) if len(steps) else np.zeros(2)
    for s, t in steps[1:]:
        flipped = (np.sign(s) * sign < 0) & (np.abs(s) > 0.5)
        if flipped.any():
            end = t - 1
            break
    seg = [(t, p) for t, p in points if t <= end]
    if len(seg) < 2:
        seg = points[:2]
    (t0, p0), (t1, p1) = seg[0], seg[-1]
    return compass(np.subtract(p1, p0) / ((t1 - t0) / fps) / width, cfg.still_speed)


def compass(velocity_xy, still_speed: float = AdherenceConfig.still_speed) -> str:
    """The nearest of 8 compass directions to a velocity in frame widths per second (image y
    grows down), or "still" below `still_speed`."""
    if np.hypot(*velocity_xy) < still_speed:
        return "still"
    angle = math.degrees(math.atan2(-velocity_xy[1], velocity_xy[0])) % 360
    return _COMPASS[int(((angle + 22.5) % 360) // 45)]


def detect(video, fps: float = 8.0, cfg: AdherenceConfig | None = None) -> list[DetectedObject]:
    """Objects in a (C, T, H, W) clip (uint8, or float in [-1, 1])."""
    cfg = cfg or AdherenceConfig()
    frames = to_uint8_thwc(video if isinstance(video, torch.Tensor) else torch.as_tensor(video))
    frames = frames.numpy() if isinstance(frames, torch.Tensor) else frames
    t_len, h, w, _ = frames.shape
    min_area = cfg.min_area_fraction * h * w
    per_colour: dict[int, list] = {i: [None] * t_len for i in range(len(_NAMES))}
    stars = "star" in cfg.shapes
    for t in range(t_len):
        labels = segment(frames[t], cfg)
        for i in np.unique(labels[labels >= 0]):
            blob = _largest_blob(labels == i, min_area)
            if blob is None:
                continue
            area, shape, centre, pixels = blob
            touching = False
            if cfg.subpixel or stars:
                cover = coverage(frames[t], labels, int(i), pixels)
                centre = coverage_centre(cover) if cfg.subpixel else centre
            if stars:
                shape = "star" if is_star(cover) else shape
                # Does it touch another object (which may hide part of it)?
                near = cv2.dilate(pixels.astype(np.uint8), _GROW, iterations=2) > 0
                touching = bool(((labels >= 0) & (labels != i))[near].any())
            per_colour[int(i)][t] = (area, shape, centre, touching)
    found = []
    for i, blobs in per_colour.items():
        hits = [b for b in blobs if b is not None]
        if len(hits) < cfg.min_frames_fraction * t_len:
            continue
        shapes = [b[1] for b in hits]
        # A star partly hidden by another object loses the points that tell it: when stars
        # are looked for, the frames where the object touches no other one vote, if any do.
        voters = [b[1] for b in hits if not b[3]] if stars else []
        majority = max(set(voters or shapes), key=(voters or shapes).count)
        track = [b[2] if b is not None else None for b in blobs]
        found.append(
            DetectedObject(
                colour=_NAMES[i],
                shape=majority,
                direction=_direction(track, w, fps, cfg),
                frames_found=len(hits),
                consistency=shapes.count(majority) / t_len,
                track=track,
                areas=[int(b[0]) if b is not None else None for b in blobs],
            )
        )
    return found


def score(
    video, truth: dict, fps: float | None = None, cfg: AdherenceConfig | None = None
) -> dict[str, float]:
    """Per-video accuracies in [0, 1]: colour (prompt objects whose colour is found), shape and
    direction (of those found), count (1 if exactly the prompt's objects are found), and
    consistency (mean share of frames each found object keeps its colour and shape). And one
    error rate, swapped: the share of found objects that move the way *another* object of the
    prompt should and not their own (a binding error; always 0 for one object)."""
    found = {d.colour: d for d in detect(video, fps or truth.get("fps", 8.0), cfg)}
    wanted = truth["objects"]
    hits = [found.get(o["colour"]) for o in wanted]
    matched = [(o, d) for o, d in zip(wanted, hits, strict=True) if d is not None]
    n = len(matched)
    # A swap: the object misses its own direction and takes another prompt object's instead.
    swaps = sum(
        d.direction != o["direction"] and any(d.direction == p["direction"] for p in wanted if p is not o)
        for o, d in matched
    )
    return {
        "colour": sum(d is not None for d in hits) / len(wanted),
        "shape": sum(o["shape"] == d.shape for o, d in matched) / n if n else 0.0,
        "direction": sum(o["direction"] == d.direction for o, d in matched) / n if n else 0.0,
        "count": float(len(found) == len(wanted) and n == len(wanted)),
        "consistency": float(np.mean([d.consistency for _, d in matched])) if n else 0.0,
        "swapped": swaps / n if n else 0.0,
    }
