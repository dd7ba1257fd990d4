"""Which source frames make up a clip: uniform in frame index, or uniform in time.

The two agree on a constant-frame-rate video sampled at its own rate, and differ otherwise:

* **index** treats the video as a list of frames and steps through it with a fixed stride
  `native_fps / fps` (rounded half up), ignoring timestamps. A 30 fps source at fps=12 gives
  indices 0, 3, 5, 8, 10, ... It is the cheap, classic recipe.
* **time** lays a clock at `fps` over the video and takes the frame *on screen* at each tick
  (the last frame whose timestamp is <= the tick). A 30 fps source at fps=12 gives
  0, 2, 5, 7, 10, ... On variable-frame-rate video it is the only one that keeps real
  motion speed.

Both are pure functions of the frame timestamps so they can be checked by hand.
"""

from __future__ import annotations

import math

import numpy as np

from filmstrip.io.errors import VideoReadError

# Timestamps are floats from a rational time base; this absorbs their rounding.
_EPS = 1e-6


def _check_request(num_frames: int | None, fps: float | None) -> None:
    if num_frames is not None and num_frames < 1:
        raise VideoReadError(f"num_frames must be at least 1, got {num_frames}")
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise VideoReadError(f"fps must be a positive number, got {fps}")


def _too_short(num_frames: int, fps: float | None, start: float, duration: float) -> VideoReadError:
    rate = f" at {fps:g} fps" if fps is not None else ""
    return VideoReadError(
        f"asked for {num_frames} frames{rate} from {start:g} s, but the video has only "
        f"{duration - start:.3g} s after that point ({duration:.3g} s in all); ask for fewer frames, "
        f"a lower fps or an earlier start"
    )


def start_index(timestamps: np.ndarray, start: float) -> int:
    """Index of the first frame shown at or after `start` seconds."""
    if start < 0:
        raise VideoReadError(f"start must be >= 0 seconds, got {start}")
    i = int(np.searchsorted(timestamps, start - _EPS, side="left"))
    if i >= len(timestamps):
        raise VideoReadError(f"start={start:g} s is past the last frame at {timestamps[-1]:.3g} s")
    return i


def indices_uniform_in_index(
    num_available: int,
    native_fps: float,
    num_frames: int | None = None,
    fps: float | None = None,
    first: int = 0,
) -> np.ndarray:
    """Frame indices `first + floor(k * stride + 1/2)` with `stride = native_fps / fps` (1 if fps is None).

    With num_frames=None, as many as fit. Raises VideoReadError when num_frames do not fit.
    """
    _check_request(num_frames, fps)
    stride = 1.0 if fps is None else native_fps / fps
    # Largest k with first + floor(k*stride + 1/2) <= num_available - 1, computed generously then trimmed.
    k_max = int(math.floor((num_available - 1 - first + 0.5) / stride)) + 1
    count = k_max + 1 if num_frames is None else num_frames
    indices = first + np.floor(np.arange(count) * stride + 0.5).astype(np.int64)
    if num_frames is None:
        indices = indices[indices < num_available]
    elif indices[-1] >= num_available:
        duration = num_available / native_fps
        raise _too_short(num_frames, fps, first / native_fps, duration)
    return indices


def indices_uniform_in_time(
    timestamps: np.ndarray,
    duration: float,
    num_frames: int | None = None,
    fps: float | None = None,
    start: float = 0.0,
) -> np.ndarray:
    """Indices of the frames on screen at times `start + k / fps`.

    `timestamps` are the sorted presentation times of all frames (seconds, first frame at 0),
    `duration` the end of the last frame. fps=None samples at the video's average rate.
    """
    _check_request(num_frames, fps)
    rate = fps if fps is not None else len(timestamps) / duration
    if num_frames is None:
        count = int(math.floor((duration - start) * rate - _EPS)) + 1
        if start >= duration or count < 1:
            raise _too_short(1, fps, start, duration)
    else:
        count = num_frames
    ticks = start + np.arange(count) / rate
    if ticks[-1] >= duration - _EPS:
        raise _too_short(count, fps, start, duration)
    indices = np.searchsorted(timestamps, ticks + _EPS, side="right") - 1
    return np.maximum(indices, 0).astype(np.int64)
