"""Captioned video grids: how filmstrip shows a set of clips to a person.

Each clip is letterboxed into a tile and its caption is written, word-wrapped, in a strip
under it, so a dataset preview or a grid of generated samples shows what each clip was meant
to be. Clips of different lengths hold their last frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from filmstrip.errors import InputError
from filmstrip.io.layout import ArrayLike, to_uint8_thwc

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _wrap(text: str, width_px: int, scale: float, max_lines: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and cv2.getTextSize(candidate, _FONT, scale, 1)[0][0] <= width_px:
            lines[-1] = candidate
        else:
            lines.append(word)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1].rstrip(".") + "..."
    return lines


def _letterbox(frames_thwc: np.ndarray, height: int, width: int) -> np.ndarray:
    t, h, w, _ = frames_thwc.shape
    scale = min(height / h, width / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    # Nearest neighbour keeps small procedural clips crisp when they are blown up.
    interp = cv2.INTER_NEAREST if scale >= 1 else cv2.INTER_AREA
    out = np.zeros((t, height, width, 3), np.uint8)
    top, left = (height - nh) // 2, (width - nw) // 2
    for k in range(t):
        out[k, top : top + nh, left : left + nw] = cv2.resize(frames_thwc[k], (nw, nh), interpolation=interp)
    return out


def video_grid(
    videos: Sequence[ArrayLike],
    captions: Sequence[str] | None = None,
    columns: int = 4,
    tile: tuple[int, int] = (192, 192),
    caption_lines: int = 5,
    gap: int = 4,
) -> np.ndarray:
    """Clips `(C, T, H, W)` (uint8, or float in [-1, 1]) -> one grid clip, uint8 `(3, T, H', W')`."""
    if not videos:
        raise InputError("video_grid needs at least one video")
    clips = [to_uint8_thwc(v) for v in videos]
    th, tw = tile
    scale = max(0.3, tw / 480)
    line_h = cv2.getTextSize("Ag", _FONT, scale, 1)[0][1] + 6
    strip = caption_lines * line_h + 4 if captions is not None else 0
    rows = -(-len(clips) // columns)
    cols = min(columns, len(clips))
    length = max(len(c) for c in clips)
    height, width = rows * (th + strip + gap) + gap, cols * (tw + gap) + gap
    # Even sides, so that H.264 and VP9 (4:2:0) take the grid as it is.
    grid = np.full((length, height + height % 2, width + width % 2, 3), 24, np.uint8)
    for k, clip in enumerate(clips):
        r, c = divmod(k, columns)
        y, x = gap + r * (th + strip + gap), gap + c * (tw + gap)
        boxed = _letterbox(clip, th, tw)
        grid[:, y : y + th, x : x + tw] = np.concatenate(
            [boxed, np.repeat(boxed[-1:], length - len(boxed), 0)]
        )
        if captions is not None:
            label = np.full((strip, tw, 3), 24, np.uint8)
            for n, line in enumerate(_wrap(captions[k], tw - 4, scale, caption_lines)):
                baseline = (n + 1) * line_h - 2
                cv2.putText(label, line, (2, baseline), _FONT, scale, (235, 235, 235), 1, cv2.LINE_AA)
            grid[:, y + th : y + th + strip, x : x + tw] = label
    return np.ascontiguousarray(grid.transpose(3, 0, 1, 2))
