"""Scene-cut detection: where a video jumps from one shot to another.

Per frame, a content change score: the mean absolute difference of the frame's HSV channels
from the previous frame's (on a small copy, in 0..255). A hard cut makes it spike; motion
inside a shot raises it too, but steadily. So the threshold adapts: a frame is a cut when its
score is at least `ratio` times the mean score of the `window` frames on either side (the
shot's own level of change) and above `min_score` (so a near-still shot's noise does not
count), and at least `min_gap` frames after the last cut (a flash is not two shots). This is
the adaptive rule of PySceneDetect's AdaptiveDetector, written here over our own reader so
it needs no second OpenCV.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from filmstrip.config import require
from filmstrip.io import iter_frames


@dataclass(frozen=True)
class CutConfig:
    ratio: float = 3.0  # a cut's score over its neighbours' mean
    min_score: float = 5.0  # 0..255: below this nothing is a cut (dark toy scenes cut at 7-15)
    window: int = 2  # frames on either side that set the local level
    min_gap: int = 8  # frames: the shortest shot
    size: int = 96  # short side of the copy that is compared

    def __post_init__(self):
        require(self, at_least={"window": 1, "min_gap": 1, "size": 8}, above={"ratio": 1})


def change_scores(frames: Iterable[np.ndarray]) -> np.ndarray:
    """(T,) content change of each frame from the one before (0 for the first), 0..255."""
    scores, previous = [], None
    for frame in frames:
        hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV_FULL).astype(np.int16)
        scores.append(0.0 if previous is None else float(np.abs(hsv - previous).mean()))
        previous = hsv
    return np.array(scores)


def find_cuts(scores: np.ndarray, cfg: CutConfig | None = None) -> list[int]:
    """Frame indices that start a new shot."""
    cfg = cfg or CutConfig()
    cuts: list[int] = []
    for t in range(1, len(scores)):
        around = np.r_[scores[max(1, t - cfg.window) : t], scores[t + 1 : t + 1 + cfg.window]]
        level = around.mean() if len(around) else 0.0
        if scores[t] < cfg.min_score or scores[t] < cfg.ratio * level:
            continue
        if cuts and t - cuts[-1] < cfg.min_gap:
            if scores[t] > scores[cuts[-1]]:  # the stronger of two close spikes wins
                cuts[-1] = t
            continue
        cuts.append(t)
    return cuts


def detect_cuts(path, cfg: CutConfig | None = None) -> tuple[list[float], list[int], np.ndarray]:
    """(cut times in seconds, cut frame indices, per-frame scores) of a video file, read one
    frame at a time at a small size."""
    cfg = cfg or CutConfig()
    times: list[float] = []

    def stream():
        for t, frame in iter_frames(path, size=cfg.size):
            times.append(t)
            yield frame

    scores = change_scores(stream())
    cuts = find_cuts(scores, cfg)
    return [times[i] for i in cuts], cuts, scores
