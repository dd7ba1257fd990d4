"""Writing video: .mp4 (H.264), .webm (VP9) and .gif, atomically.

RGB -> YUV is done with OpenCV's BT.601 conversion, the exact inverse of the reader's fast
path, so a write/read round trip loses only what the codec loses. GIFs get one global
palette built from the clip's own colours (the 256 most common 15-bit colours, averaged),
which keeps flat procedural colours exact and natural video acceptable.

`lossless=True` writes .mp4 as H.264 in RGB (libx264rgb, crf 0): every pixel comes back
exactly, where 4:2:0 YUV halves the colour resolution and smears a 64-pixel clip's coloured
edges. Few players show such files; it is for clips a model will learn from.
"""

from __future__ import annotations

import os
import warnings
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from filmstrip.atomic import atomic_path
from filmstrip.errors import FilmstripWarning
from filmstrip.io.errors import VideoWriteError
from filmstrip.io.layout import ArrayLike, to_uint8_thwc

_CODECS = {".mp4": "libx264", ".webm": "libvpx-vp9", ".gif": "gif"}


def _codec_options(suffix: str, quality: int | None, lossless: bool = False) -> dict[str, str]:
    if lossless:  # libx264rgb at crf 0: every pixel exact
        return {"crf": "0", "preset": "medium"}
    if suffix == ".mp4":
        # crf 18 is visually lossless for x264; faststart puts the index first, so players can
        # stream the file and a truncated copy stays partly readable.
        return {"crf": str(18 if quality is None else quality), "preset": "medium"}
    if suffix == ".webm":
        return {"crf": str(30 if quality is None else quality), "b:v": "0", "cpu-used": "4", "row-mt": "1"}
    return {}


def _gif_palette(frames_thwc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A global palette for a clip: (256, 4) in pal8's byte order, and a 15-bit colour -> index table."""
    step = max(1, len(frames_thwc) // 16)  # sample up to ~16 frames; enough to see every colour
    sample = frames_thwc[::step].reshape(-1, 3).astype(np.int64)
    bins = ((sample[:, 0] >> 3) << 10) | ((sample[:, 1] >> 3) << 5) | (sample[:, 2] >> 3)
    counts = np.bincount(bins, minlength=1 << 15)
    top = np.argsort(-counts, kind="stable")[:256]
    top = top[counts[top] > 0]
    colours = np.stack(
        [np.bincount(bins, weights=sample[:, c], minlength=1 << 15)[top] / counts[top] for c in range(3)], 1
    )
    # Every 15-bit colour maps to its nearest palette colour (chunked to bound memory).
    grid = np.arange(1 << 15)
    centres = np.stack([(grid >> 10) & 31, (grid >> 5) & 31, grid & 31], 1) * 8 + 4
    lut = np.empty(1 << 15, dtype=np.uint8)
    for lo in range(0, 1 << 15, 4096):
        d = ((centres[lo : lo + 4096, None, :] - colours[None]) ** 2).sum(-1)
        lut[lo : lo + 4096] = d.argmin(1)
    lut[top] = np.arange(len(top))  # a colour that is in the palette maps to itself
    palette = np.zeros((256, 4), dtype=np.uint8)
    palette[:, 0] = 255  # pal8 rows are (A, R, G, B); PyAV packs them into native ARGB words
    palette[: len(top), 1:] = np.round(colours).astype(np.uint8)
    return palette, lut


def check_output_path(path: str | os.PathLike) -> Path:
    """Refuse, before any work, an output that cannot be written: an unknown suffix, a folder
    in the way, a parent that is a file or a folder that is not writable. Creates the parent."""
    out = Path(path)
    suffix = out.suffix.lower()
    if not suffix:
        raise VideoWriteError(f"{out}: the name says no format; end it with one of {', '.join(_CODECS)}")
    if suffix not in _CODECS:
        raise VideoWriteError(f"{out}: cannot write '{suffix}' files; use one of {', '.join(_CODECS)}")
    if out.is_dir():
        raise VideoWriteError(f"{out}: is a folder; give a file name such as {out / ('clip' + suffix)}")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise VideoWriteError(f"{out}: cannot write under {parent}, which is a file")
            break
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VideoWriteError(f"{out}: cannot create the folder {out.parent} ({e.strerror})") from None
    if not os.access(out.parent, os.W_OK):
        raise VideoWriteError(f"{out}: the folder {out.parent} is not writable")
    return out


def _warn_if_another_range(out: Path, video: ArrayLike) -> None:
    """Float video far outside [-1, 1] (0..255 floats, say) would be written clipped to white
    and black without a word; a decoder's slight overshoot is clipped quietly."""
    if isinstance(video, np.ndarray):
        floating, empty = np.issubdtype(video.dtype, np.floating), video.size == 0
    else:
        floating, empty = video.is_floating_point(), video.numel() == 0
    if not floating or empty:
        return
    low, high = float(video.min()), float(video.max())
    if low < -1.5 or high > 1.5:
        warnings.warn(
            f"{out}: float pixels from {low:g} to {high:g} were clipped to [-1, 1], the range float video is "
            "read in (uint8 video is 0..255)",
            FilmstripWarning,
            stacklevel=3,
        )


def write_video(
    path: str | os.PathLike, video: ArrayLike, fps: float, quality: int | None = None, lossless: bool = False
) -> Path:
    """Write a `(C, T, H, W)` clip (uint8, or float in [-1, 1]) and return the path.

    The format follows the suffix: .mp4 (H.264), .webm (VP9) or .gif. `quality` is the
    codec's crf (lower is better) for .mp4 and .webm. H.264 and VP9 need even sizes: an odd
    height or width is padded by one edge row or column, with a warning. GIF stores delays
    in hundredths of a second, so its frame rate is rounded to fit. `lossless` (.mp4 only):
    exact RGB H.264, for training data rather than for players.
    """
    out = check_output_path(path)
    suffix = out.suffix.lower()
    if not (np.isfinite(fps) and fps > 0):
        raise VideoWriteError(f"{out}: fps must be a positive number, got {fps}")
    if lossless and suffix != ".mp4":
        raise VideoWriteError(f"{out}: lossless writing is for .mp4 only, not '{suffix}'")
    _warn_if_another_range(out, video)
    try:
        frames = to_uint8_thwc(video)
    except ValueError as e:
        raise VideoWriteError(f"{out}: {e}") from None
    if len(frames) == 0:
        raise VideoWriteError(f"{out}: the video has no frames")
    if suffix != ".gif" and (frames.shape[1] % 2 or frames.shape[2] % 2):
        h, w = frames.shape[1:3]
        warnings.warn(
            f"{out}: padding {h}x{w} to even size for {_CODECS[suffix]}", FilmstripWarning, stacklevel=2
        )
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    try:  # the muxer picks the format by the temporary name's suffix
        with atomic_path(out, suffix=f".partial{suffix}") as tmp:
            _encode(tmp, frames, fps, suffix, quality, lossless)
    except av.error.FFmpegError as e:
        raise VideoWriteError(f"{out}: the encoder failed ({e})") from None
    except OSError as e:  # no such folder, no permission, a full disk, a folder made read-only meanwhile
        raise VideoWriteError(f"{out}: could not write the video ({e.strerror or e})") from None
    return out


def _encode(
    tmp: Path, frames: np.ndarray, fps: float, suffix: str, quality: int | None, lossless: bool
) -> None:
    rate = Fraction(fps).limit_denominator(1001)
    options = {"movflags": "+faststart"} if suffix == ".mp4" else {}
    with av.open(str(tmp), mode="w", options=options) as container:
        codec = "libx264rgb" if lossless else _CODECS[suffix]
        stream = container.add_stream(codec, rate=rate, options=_codec_options(suffix, quality, lossless))
        stream.height, stream.width = frames.shape[1:3]
        if suffix == ".gif":
            # GIF delays are whole hundredths of a second: stamp each frame at its rounded
            # time so delays alternate (12, 13, 12, ... cs at 8 fps) and the average rate holds.
            stream.pix_fmt = "pal8"
            stream.time_base = Fraction(1, 100)
            palette, lut = _gif_palette(frames)
        else:
            stream.pix_fmt = "rgb24" if lossless else "yuv420p"
        for k, frame_hw3 in enumerate(frames):
            if suffix == ".gif":
                f = frame_hw3.astype(np.int64)
                indices = lut[((f[..., 0] >> 3) << 10) | ((f[..., 1] >> 3) << 5) | (f[..., 2] >> 3)]
                frame = av.VideoFrame.from_ndarray((indices, palette), format="pal8")
                frame.pts = round(k * 100 / fps)
                frame.time_base = stream.time_base
            elif lossless:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_hw3), format="rgb24")
            else:
                yuv = cv2.cvtColor(frame_hw3, cv2.COLOR_RGB2YUV_I420)
                frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
