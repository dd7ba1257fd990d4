"""A physics probe for `shapes` clips: do the objects behave the way the world they were
trained on behaves? That world's laws are known exactly: every object keeps its shape, size
and colour, moves at constant velocity, reflects off the walls (and only there), and never
vanishes, appears or splits. The probe tracks every object from pixels alone (the palette
segmentation of `adherence.py`) and checks each law, so it needs no prompt and no ground
truth: it scores a generated clip and a real one alike, and real clips score ~100%.

Parts, each pass/fail per object:

* **permanence**: found on every frame, except frames where it could be hidden behind another
  object (its interpolated position inside another object's box); an object found on too few
  frames at all is a flash that appeared and vanished;
* **no split**: never a second blob of its colour as large as a quarter of the first;
* **size**: its area within 25% of its median area on every frame it is not overlapped;
* **colour**: the mean colour of its pixels within 30 RGB units of its median colour;
* **speed**: per axis, the track cut where it reverses or touches a wall; each piece on a
  straight line (constant velocity: no centroid more than 1 px off it, what pixel-quantised
  centroids allow) and every piece at the pieces' median speed within max(0.3 px, 20%)
  per frame (an elastic bounce keeps the speed);
* **reflection**: every reversal happens at the wall it turns from (within 2 px plus one
  step of motion).

A clip's score is the mean over parts of the share of its objects that pass; it passes when
every object passes every part.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from filmstrip.eval.adherence import _NAMES, AdherenceConfig, segment
from filmstrip.eval.temporal import frames_uint8

PARTS = ("permanence", "no_split", "size", "colour", "speed", "reflection")


@dataclass(frozen=True)
class PhysicsConfig:
    min_area_fraction: float = 0.004  # of the frame: smaller blobs are noise
    min_frames_fraction: float = 0.25  # an object found on fewer frames is a flash
    split_ratio: float = 0.25  # second blob / first blob of one colour
    size_tolerance: float = 0.25
    colour_tolerance: float = 30.0
    line_px: float = 1.0  # how far a centroid may stray from its straight path
    speed_tolerance: tuple[float, float] = (0.3, 0.2)  # px per frame, share of the speed
    moving_px: float = 0.5  # |velocity| below this on an axis is no motion there
    wall_px: float = 2.0
    overlap_margin: int = 2  # px around another object's box that counts as overlap


@dataclass
class Track:
    colour: str
    area: list[float | None]  # per frame, None where the object is not found
    centre: list[tuple[float, float] | None]
    box: list[tuple[int, int, int, int] | None]  # x0, y0, x1, y1 (inclusive)
    rgb: list[np.ndarray | None]
    split: list[bool]


@dataclass
class PhysicsScore:
    score: float  # mean over parts of the share of objects passing
    passed: bool
    parts: dict[str, float]  # share of objects passing each part
    objects: dict[str, dict[str, bool]] = field(default_factory=dict)


def track(frames_thw3: np.ndarray, cfg: PhysicsConfig) -> list[Track]:
    """One track per palette colour seen on any frame: its largest blob on every frame."""
    t_len, h, w, _ = frames_thw3.shape
    min_area = cfg.min_area_fraction * h * w
    seg_cfg = AdherenceConfig()
    tracks: dict[int, Track] = {}
    for t in range(t_len):
        labels = segment(frames_thw3[t], seg_cfg)
        for i in np.unique(labels[labels >= 0]):
            mask = (labels == i).astype(np.uint8)
            n, blobs, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
            order = 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA])
            area = float(stats[order[0], cv2.CC_STAT_AREA])
            if area < min_area:
                continue
            tr = tracks.setdefault(
                int(i),
                Track(
                    _NAMES[int(i)],
                    [None] * t_len,
                    [None] * t_len,
                    [None] * t_len,
                    [None] * t_len,
                    [False] * t_len,
                ),
            )
            x, y, bw, bh = stats[order[0], :4]
            tr.area[t], tr.centre[t] = area, tuple(centroids[order[0]])
            tr.box[t] = (int(x), int(y), int(x + bw - 1), int(y + bh - 1))
            tr.rgb[t] = frames_thw3[t][blobs == order[0]].astype(np.float32).mean(0)
            second = float(stats[order[1], cv2.CC_STAT_AREA]) if n > 2 else 0.0
            tr.split[t] = second >= max(min_area, cfg.split_ratio * area)
    return [tr for _, tr in sorted(tracks.items())]


def _inside(point, box, margin: int) -> bool:
    return box[0] - margin <= point[0] <= box[2] + margin and box[1] - margin <= point[1] <= box[3] + margin


def _overlaps(a, b, margin: int) -> bool:
    return a[0] - margin <= b[2] and b[0] - margin <= a[2] and a[1] - margin <= b[3] and b[1] - margin <= a[3]


def _interpolated(centres: list, t: int):
    """Where an object was at frame t, from the nearest frames it was found on."""
    found = [k for k, c in enumerate(centres) if c is not None]
    before = [k for k in found if k < t]
    after = [k for k in found if k > t]
    if before and after:
        k0, k1 = before[-1], after[0]
        w = (t - k0) / (k1 - k0)
        return tuple((1 - w) * np.array(centres[k0]) + w * np.array(centres[k1]))
    return centres[before[-1] if before else after[0]]


def judge(tr: Track, others: list[Track], size: tuple[int, int], cfg: PhysicsConfig) -> dict[str, bool]:
    """Each part, pass or fail, for one object."""
    h, w = size
    t_len = len(tr.area)
    found = [t for t in range(t_len) if tr.area[t] is not None]
    m = cfg.overlap_margin

    def overlapped(t: int) -> bool:
        return tr.box[t] is not None and any(
            o.box[t] is not None and _overlaps(tr.box[t], o.box[t], m) for o in others
        )

    hidden_ok = all(
        any(o.box[t] is not None and _inside(_interpolated(tr.centre, t), o.box[t], m) for o in others)
        for t in range(t_len)
        if tr.area[t] is None
    )
    permanence = len(found) >= cfg.min_frames_fraction * t_len and hidden_ok
    clear = [t for t in found if not overlapped(t)]
    areas = np.array([tr.area[t] for t in clear])
    size_ok = len(areas) == 0 or bool(np.all(np.abs(areas / np.median(areas) - 1) <= cfg.size_tolerance))
    rgbs = np.array([tr.rgb[t] for t in clear]) if clear else np.zeros((0, 3))
    colour_ok = len(rgbs) == 0 or bool(
        np.all(np.linalg.norm(rgbs - np.median(rgbs, 0), axis=1) <= cfg.colour_tolerance)
    )
    speed_ok, reflection_ok = _motion(tr, clear, (h, w), cfg)
    return {
        "permanence": permanence,
        "no_split": not any(tr.split[t] for t in clear),
        "size": size_ok,
        "colour": colour_ok,
        "speed": speed_ok,
        "reflection": reflection_ok,
    }


def _turns(p: dict[int, float], moving_px: float) -> list[int]:
    """Frames where motion along one axis reverses: between two steps that move (more than
    `moving_px`) in opposite directions, the frame of the extreme position."""
    frames = sorted(p)
    steps = [(t0, t1, p[t1] - p[t0]) for t0, t1 in zip(frames, frames[1:], strict=False) if t1 == t0 + 1]
    moves = [(t0, t1, v) for t0, t1, v in steps if abs(v) > moving_px]
    turns = []
    for (a0, _, va), (_, b1, vb) in zip(moves, moves[1:], strict=False):
        if va * vb < 0:
            between = [t for t in frames if a0 <= t <= b1]
            extreme = max(between, key=lambda t: p[t] * np.sign(va))
            turns.append(extreme)
    return turns


def _span(box: tuple[int, int, int, int], axis: int) -> tuple[int, int]:
    return (box[0], box[2]) if axis == 0 else (box[1], box[3])


def _motion(tr: Track, clear: list[int], size: tuple[int, int], cfg: PhysicsConfig) -> tuple[bool, bool]:
    """(constant speed between bounces, reversals only at walls). Per axis the track is cut
    at its reversals; each piece must lie on a straight line (constant velocity: residuals
    within `line_px`, what pixel-quantised centroids allow) and every piece must move at the
    speed of the others (an elastic bounce keeps the speed)."""
    h, w = size
    speed_ok, reflection_ok = True, True
    absolute, relative = cfg.speed_tolerance
    for axis, far_wall in enumerate([w - 1, h - 1]):
        p = {t: tr.centre[t][axis] for t in clear}
        if len(p) < 3:
            continue
        turns = _turns(p, cfg.moving_px)
        for t in turns:
            lo, hi = _span(tr.box[t], axis)
            before = max((k for k in p if k < t), default=t)
            heading_low = p[t] < p[before]  # moving towards the left / top wall
            # On the turning frame the object is within one step of the wall it turned from.
            reach = cfg.wall_px + max(abs(p[t] - p[k]) for k in p if abs(k - t) == 1)
            reflection_ok &= bool(lo <= reach if heading_low else far_wall - hi <= reach)
        # A frame at a wall may hold a bounce too small to show as a reversal (the last step).
        touching = [
            t
            for t in p
            if min(_span(tr.box[t], axis)[0], far_wall - _span(tr.box[t], axis)[1]) <= cfg.wall_px
        ]
        edges = sorted({min(p), *turns, *touching, max(p)})
        slopes = []
        for start, end in zip(edges, edges[1:], strict=False):
            # The turning frame itself is left out: the wall cuts its step in two.
            piece = [
                t for t in p if start < t < end or t in (start, end) and t not in turns and t not in touching
            ]
            if len(piece) < 3:
                continue
            ts = np.array(piece, dtype=np.float64)
            ps = np.array([p[t] for t in piece])
            slope, offset = np.polyfit(ts, ps, 1)
            speed_ok &= bool(np.abs(ps - (slope * ts + offset)).max() <= cfg.line_px)
            slopes.append(abs(slope))
        if len(slopes) >= 2:
            typical = float(np.median(slopes))
            speed_ok &= all(abs(s - typical) <= max(absolute, relative * typical) for s in slopes)
    return speed_ok, reflection_ok


def probe(video, cfg: PhysicsConfig | None = None) -> PhysicsScore:
    """The physics score of one clip ((3, T, H, W) in [-1, 1] or (T, H, W, 3) uint8)."""
    cfg = cfg or PhysicsConfig()
    frames = frames_uint8(video)
    tracks = track(frames, cfg)
    verdicts = {
        tr.colour: judge(tr, [o for o in tracks if o is not tr], frames.shape[1:3], cfg) for tr in tracks
    }
    if not verdicts:  # nothing to track: every law holds vacuously, but say so in the parts
        return PhysicsScore(1.0, True, dict.fromkeys(PARTS, 1.0), {})
    parts = {p: float(np.mean([v[p] for v in verdicts.values()])) for p in PARTS}
    return PhysicsScore(
        score=float(np.mean(list(parts.values()))),
        passed=all(all(v.values()) for v in verdicts.values()),
        parts=parts,
        objects=verdicts,
    )


def summarise(scores: list[PhysicsScore]) -> dict[str, float]:
    """Mean score, share of clips passing, and per part the share of clips whose objects all pass."""
    out = {
        "score": float(np.mean([s.score for s in scores])),
        "passed": float(np.mean([s.passed for s in scores])),
    }
    for p in PARTS:
        out[p] = float(np.mean([s.parts[p] == 1.0 for s in scores]))
    return out
