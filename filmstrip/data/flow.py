"""Dense optical flow with OpenCV's DIS (Kroeger et al. 2016), and what is built on it: the
colour-wheel picture of a flow field, warping along it, and a clip's motion score.

No learned flow network (RAFT) installs offline; DIS at its medium preset is the fast,
deterministic substitute (OpenCV runs single-threaded here so that results repeat).
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from filmstrip.errors import InputError


def grey(frame_hw3: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame_hw3, cv2.COLOR_RGB2GRAY)


def flow(a_hw: np.ndarray, b_hw: np.ndarray) -> np.ndarray:
    """Dense flow (H, W, 2) in pixels such that a(x) ~ b(x + flow(x)), between grey frames."""
    cv2.setNumThreads(1)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(a_hw, b_hw, None)


def warp(image: np.ndarray, flow_hw2: np.ndarray) -> np.ndarray:
    """image sampled at x + flow(x) (bilinear, edges replicated), as float32."""
    h, w = flow_hw2.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(
        image.astype(np.float32),
        xs + flow_hw2[..., 0],
        ys + flow_hw2[..., 1],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def flow_to_rgb(flow_hw2: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """The usual colour-wheel picture, (H, W, 3) uint8: hue is the direction of motion (red
    to the right, then round through yellow-green for down as the image's y grows down), brightness
    its speed, full at `max_magnitude` px (default: this field's largest), black where still."""
    magnitude, angle = cv2.cartToPolar(
        flow_hw2[..., 0].astype(np.float32), flow_hw2[..., 1].astype(np.float32)
    )
    top = max_magnitude if max_magnitude is not None else float(magnitude.max())
    hsv = np.zeros((*flow_hw2.shape[:2], 3), np.uint8)
    hsv[..., 0] = np.round(angle * (90 / np.pi)).astype(np.uint8) % 180  # OpenCV hue is 0..179
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(magnitude / max(top, 1e-6) * 255, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def frame_speeds(frames: Iterable[np.ndarray], fps: float) -> np.ndarray:
    """Per-frame motion (T,): the mean flow magnitude from the frame before, in frame short
    sides per second (frame 0 takes frame 1's value, so the array lines up with the frames)."""
    previous, speeds, side = None, [], None
    for frame in frames:
        g = grey(frame)
        side = min(g.shape)
        if previous is not None:
            f = flow(previous, g)
            speeds.append(float(np.hypot(f[..., 0], f[..., 1]).mean()))
        previous = g
    if not speeds:
        raise InputError("a motion score needs at least two frames")
    return np.array(speeds[:1] + speeds) * fps / side


def motion_score(frames: Iterable[np.ndarray], fps: float) -> float:
    """How much a clip moves: the mean flow magnitude between consecutive frames, in frame
    short sides per second, so that one number compares clips of any size and rate."""
    return float(frame_speeds(frames, fps)[1:].mean())
