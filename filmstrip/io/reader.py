"""Reading video with PyAV: probe, frame selection, and a fast decode path.

Decoding is the usual bottleneck of video training, and half of its cost is often not the
codec but the YUV -> RGB conversion. PyAV's own `to_ndarray(format="rgb24")` goes through
swscale; for the common case (yuv420p, BT.601 or untagged, limited range) OpenCV's SIMD
conversion is several times faster, so that case takes the fast path and everything else
(other pixel formats, BT.709, full range) falls back to PyAV, which is correct for all.

How a read works:
  1. index: demux (no decoding) the video stream once to list every frame's timestamp;
     cached per file, so sampling many clips from one video indexes it once.
  2. select: pick source frames uniform in index or in time (`filmstrip.io.sampling`).
  3. decode: seek to the keyframe before the first wanted frame and decode forward to the
     last, converting only the wanted frames straight into a preallocated array.
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import cv2
import numpy as np
import torch

from filmstrip.errors import FilmstripWarning, InputError
from filmstrip.io.errors import VideoReadError
from filmstrip.io.layout import to_float_cthw
from filmstrip.io.memory import check_fits
from filmstrip.io.sampling import indices_uniform_in_index, indices_uniform_in_time, start_index

# Colour tags under which OpenCV's I420 conversion (BT.601, limited range) is exact.
# FFmpeg's AVColorSpace: 2 unspecified, 5 BT470BG, 6 SMPTE170M; AVColorRange: 2 is full (JPEG).
_BT601_SPACES = {2, 5, 6}
_FULL_RANGE = 2


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` learns about a file without decoding it."""

    path: str
    width: int
    height: int
    num_frames: int
    fps: float  # average frame rate
    duration: float  # seconds, from the first frame's start to the last frame's end
    codec: str
    pix_fmt: str
    variable_frame_rate: bool
    has_audio: bool
    truncated: bool  # the container promised more frames than could be read
    # Counter-clockwise turn (0, 90, 180, 270) that the file's display matrix asks for, as
    # phones record portrait video; width and height are as displayed, after the turn.
    rotation: int = 0


@dataclass(frozen=True)
class ClipInfo:
    """How a clip returned by `read_video` was taken from its source."""

    video: VideoInfo
    indices: tuple[int, ...]  # source frame index of each output frame
    timestamps: tuple[float, ...]  # source time (s) of each output frame
    fps: float  # rate at which the clip is meant to be played
    partial: bool  # frames were missing and allow_partial let the read go on


@dataclass(frozen=True)
class _Index:
    pts: np.ndarray  # (N,) int64 presentation timestamps in stream time base, sorted
    timestamps: np.ndarray  # (N,) float64 seconds, first frame at 0
    duration: float
    info: VideoInfo


# ----------------------------------------------------------------------------- opening


def _open(path: str | os.PathLike) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    p = Path(path)
    if not p.exists():
        raise VideoReadError(f"{p}: no such file")
    if p.is_dir():
        raise VideoReadError(f"{p}: is a directory, not a video file")
    if p.stat().st_size == 0:
        raise VideoReadError(f"{p}: the file is empty")
    try:
        container = av.open(str(p), metadata_errors="ignore")
    except av.error.EOFError:
        raise VideoReadError(
            f"{p}: the file ends before any video data (it holds no frames or is cut off)"
        ) from None
    except av.error.FFmpegError as e:
        raise VideoReadError(f"{p}: not a video file that FFmpeg can read ({_reason(e)})") from None
    if not container.streams.video:
        kinds = ", ".join(sorted({s.type for s in container.streams}))
        container.close()
        if not kinds:
            raise VideoReadError(f"{p}: holds no streams at all (an empty video with no frames?)")
        raise VideoReadError(f"{p}: has no video stream (it holds only {kinds})")
    return container, container.streams.video[0]


def _reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e)


@functools.lru_cache(maxsize=4096)
def _index_cached(path: str, mtime_ns: int, size: int) -> _Index:
    container, stream = _open(path)
    with container:
        return _build_index(path, container, stream)


def _index(path: str | os.PathLike) -> _Index:
    p = Path(path)
    if not p.is_file():
        _open(p)  # raises the right sentence for a missing path or a directory
    st = p.stat()
    return _index_cached(str(p), st.st_mtime_ns, st.st_size)


def _build_index(path: str, container, stream) -> _Index:
    pts: list[int] = []
    last_duration = 0
    failed = False
    try:
        for packet in container.demux(stream):
            if packet.size == 0:  # the flush packet at the end of a stream
                continue
            stamp = packet.pts if packet.pts is not None else packet.dts
            if stamp is None:
                raise VideoReadError(
                    f"{path}: frames carry no timestamps; remux it (ffmpeg -i IN -c copy OUT.mkv)"
                )
            pts.append(stamp)
            last_duration = packet.duration or 0
    except av.error.FFmpegError:
        failed = True  # truncated or corrupt past this point; what was indexed is readable
    if not pts:
        raise VideoReadError(f"{path}: the video stream has no frames")

    pts_arr = np.unique(np.asarray(pts, dtype=np.int64))  # display order; drops duplicated packets
    tb = float(stream.time_base)
    timestamps = (pts_arr - pts_arr[0]) * tb
    intervals = np.diff(timestamps)
    typical = float(np.median(intervals)) if len(intervals) else 0.0
    # How long the last frame stays on screen: its packet says, else the typical interval,
    # else (a lone frame with no duration) one tick of the declared rate, else 1 s.
    if last_duration:
        last_seconds = last_duration * tb
    elif typical:
        last_seconds = typical
    else:
        last_seconds = 1.0 / float(stream.average_rate or stream.guessed_rate or 1)
    duration = float(timestamps[-1] + last_seconds)
    declared = stream.frames or 0
    vfr = bool(len(intervals) > 1 and intervals.max() - intervals.min() > max(1e-3, 0.1 * typical))
    rotation = _display_rotation(path)
    width, height = stream.codec_context.width, stream.codec_context.height
    if rotation in (90, 270):
        width, height = height, width
    info = VideoInfo(
        path=path,
        width=width,
        height=height,
        num_frames=len(pts_arr),
        fps=_average_rate(stream.average_rate, timestamps, duration),
        duration=duration,
        codec=stream.codec_context.name,
        pix_fmt=stream.codec_context.pix_fmt or "unknown",
        variable_frame_rate=vfr,
        has_audio=bool(container.streams.audio),
        truncated=failed or (declared > len(pts_arr)),
        rotation=rotation,
    )
    return _Index(pts=pts_arr, timestamps=timestamps, duration=duration, info=info)


def _display_rotation(path: str) -> int:
    """The display matrix's turn, read from the first decoded frame (PyAV exposes it there):
    one frame's decode, paid once per file since the index is cached."""
    try:
        container, stream = _open(path)
        with container:
            for frame in container.decode(stream):
                return int(round(float(getattr(frame, "rotation", 0) or 0) / 90.0)) * 90 % 360
    except (av.error.FFmpegError, VideoReadError):
        pass
    return 0


def _average_rate(declared, timestamps: np.ndarray, duration: float) -> float:
    """The declared rate when the timestamps agree with it (it is an exact rational, 30000/1001
    say); otherwise the measured one (GIF demuxers, for one, declare rates their delays don't keep)."""
    n = len(timestamps)
    measured = (n - 1) / timestamps[-1] if n > 1 else n / duration
    if declared and abs(float(declared) - measured) <= 0.01 * measured:
        return float(declared)
    return float(measured)


def probe(path: str | os.PathLike) -> VideoInfo:
    """Size, frame count, average fps, duration and codec of a video, without decoding it."""
    return _index(path).info


def frame_timestamps(path: str | os.PathLike) -> np.ndarray:
    """Presentation time (seconds, first frame at 0) of every frame, in display order."""
    return _index(path).timestamps.copy()


# ----------------------------------------------------------------------------- decoding


def _target_size(size: int | tuple[int, int] | None, height: int, width: int) -> tuple[int, int]:
    """(H, W) of the output: None keeps the source size, an int sets the shorter side."""
    if size is None:
        return height, width
    if isinstance(size, int) and not isinstance(size, bool):
        if size < 1:
            raise VideoReadError(f"size must be a positive integer, got {size}")
        scale = size / min(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))
    if (
        isinstance(size, tuple | list)
        and len(size) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size)
    ):
        return int(size[0]), int(size[1])
    raise VideoReadError(
        f"size must be an int (shorter side) or a (height, width) pair of positive ints, got {size!r}"
    )


def _frame_to_rgb(frame: av.VideoFrame, out_hw3: np.ndarray, rotation: int = 0) -> None:
    """Convert one decoded frame into `out_hw3` (H, W, 3), resizing if the shapes differ, and
    turning it `rotation` degrees counter-clockwise (the file's display matrix)."""
    if rotation:
        turns = rotation // 90
        stored = out_hw3.shape[:2] if turns % 2 == 0 else out_hw3.shape[1::-1]
        upright = np.empty((*stored, 3), np.uint8)
        _frame_to_rgb(frame, upright)
        out_hw3[...] = np.rot90(upright, k=turns)
        return
    h, w = out_hw3.shape[:2]
    same_size = (frame.height, frame.width) == (h, w)
    fast = (
        frame.format.name == "yuv420p"
        and frame.colorspace in _BT601_SPACES
        and frame.color_range != _FULL_RANGE
        and frame.width % 2 == 0
        and frame.height % 2 == 0
    )
    if fast:
        yuv = frame.to_ndarray()  # (H * 3/2, W): Y, then U and V planes, no conversion
        if same_size:
            cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_I420, dst=out_hw3)
            return
        rgb = cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_I420)
    else:
        rgb = frame.to_ndarray(format="rgb24")
        if same_size:
            out_hw3[...] = rgb
            return
    # Area averaging for downscaling avoids aliasing; linear is better for upscaling.
    shrink = h * w < frame.height * frame.width
    cv2.resize(rgb, (w, h), dst=out_hw3, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _decode_into(
    path: str, index: _Index, wanted: np.ndarray, out: np.ndarray, threads: int, keep_going: bool
) -> tuple[np.ndarray, bool]:
    """Decode the frames `wanted` (source indices, any order, repeats allowed) into `out`.

    Packets are decoded one by one so that a damaged packet costs only its own frames when
    `keep_going` is set. Returns a mask of the output slots filled and whether any packet failed.
    """
    slots: dict[int, list[int]] = defaultdict(list)
    for slot, i in enumerate(wanted):
        slots[int(index.pts[i])].append(slot)
    filled = np.zeros(len(wanted), dtype=bool)
    first, last = int(index.pts[wanted.min()]), int(index.pts[wanted.max()])

    def take(frames) -> bool:
        for frame in frames:
            for slot in slots.get(frame.pts, ()):
                if not filled[slot]:
                    _frame_to_rgb(frame, out[slot], index.info.rotation)
                    filled[slot] = True
            if frame.pts is not None and frame.pts >= last and filled.all():
                return True
        return False

    def run(seek: bool) -> bool:
        failed = False
        container, stream = _open(path)
        with container:
            if threads != 1:
                stream.thread_type = "AUTO"
                stream.thread_count = threads
            if seek and wanted.min() > 0:
                container.seek(first, stream=stream, backward=True, any_frame=False)
            packets = container.demux(stream)
            while True:
                try:
                    packet = next(packets)
                except StopIteration:
                    return failed
                except av.error.FFmpegError:  # the container is broken from here on
                    break
                try:
                    if take(packet.decode()):  # the last packet (size 0) flushes the decoder
                        return failed
                except av.error.FFmpegError:
                    failed = True
                    if not keep_going:
                        return failed
            # Demuxing broke off before the flush packet: drain what decoder threads still hold.
            with contextlib.suppress(av.error.FFmpegError):
                take(stream.codec_context.decode(None))
        return True

    failed = run(seek=True)
    if not filled.all() and not failed and wanted.min() > 0:
        failed = run(seek=False)  # a bad seek index: decode from the start instead
    return filled, failed


def iter_frames(
    path: str | os.PathLike, size: int | tuple[int, int] | None = None, threads: int = 1
) -> Iterator[tuple[float, np.ndarray]]:
    """Every frame of a video in order, as (seconds from the first frame, (H, W, 3) uint8), one
    at a time: for whole long videos (cut detection, flow), where `read_video` would hold them
    all. A damaged packet costs its own frames (with a warning at the end), not the rest."""
    index = _index(path)
    info = index.info
    height, width = _target_size(size, info.height, info.width)
    out_shape = (height, width, 3)
    first = int(index.pts[0])
    failed = 0
    container, stream = _open(path)
    with container:
        if threads != 1:
            stream.thread_type = "AUTO"
            stream.thread_count = threads
        base = float(stream.time_base)
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                failed += 1
                continue
            for frame in frames:
                if frame.pts is None:
                    continue
                rgb = np.empty(out_shape, np.uint8)
                _frame_to_rgb(frame, rgb, info.rotation)
                yield (frame.pts - first) * base, rgb
    if failed:
        packets = f"{failed} damaged packet" + ("s" if failed > 1 else "")
        warnings.warn(f"{path}: truncated or corrupt; {packets} skipped", FilmstripWarning, stacklevel=2)


def read_video(
    path: str | os.PathLike,
    num_frames: int | None = None,
    fps: float | None = None,
    size: int | tuple[int, int] | None = None,
    start: float = 0.0,
    sampling: Literal["index", "time"] = "index",
    dtype: torch.dtype = torch.uint8,
    allow_partial: bool = False,
    threads: int = 1,
) -> tuple[torch.Tensor, ClipInfo]:
    """Read a clip as a `(C, T, H, W)` tensor plus how it was sampled.

    Args:
        num_frames: frames to return; None for as many as the video holds from `start`.
        fps: rate to sample at; None keeps the source rate (consecutive frames in index mode).
        size: None keeps the source size; an int sets the shorter side (aspect kept);
            (H, W) resizes exactly.
        start: seconds from the first frame.
        sampling: "index" (uniform in frame index) or "time" (uniform in time); see sampling.py.
        dtype: torch.uint8 for 0..255, or a float dtype for values in [-1, 1].
        allow_partial: on a truncated or corrupt file, return the frames that decode instead
            of raising; `ClipInfo.partial` then says so.
        threads: FFmpeg decoder threads; 0 lets FFmpeg choose. The default 1 is fastest where
            cores are few or DataLoader workers already use them all (measured: on 2 cores,
            threaded H.264 decoding ran at 0.7x of single-threaded); raise it to read one
            large video on a machine with many idle cores.

    Raises:
        VideoReadError: one sentence naming the file and what is wrong with it or the request.
    """
    if sampling not in ("index", "time"):
        raise VideoReadError(f"sampling must be 'index' or 'time', got {sampling!r}")
    index = _index(path)
    info = index.info
    name = str(path)
    if info.truncated and not allow_partial:
        raise VideoReadError(
            f"{name}: the file is truncated or corrupt (only {info.num_frames} frames could be read); "
            f"pass allow_partial=True (--allow-partial) to use them"
        )
    height, width = _target_size(size, info.height, info.width)
    try:
        if sampling == "index":
            first = start_index(index.timestamps, start)
            wanted = indices_uniform_in_index(info.num_frames, info.fps, num_frames, fps, first)
        else:
            wanted = indices_uniform_in_time(index.timestamps, index.duration, num_frames, fps, start)
    except VideoReadError as e:
        raise VideoReadError(f"{name}: {e}") from None

    # uint8 frames, plus the float copy when one is asked for.
    itemsize = 1 + (torch.empty((), dtype=dtype).element_size() if dtype.is_floating_point else 0)
    try:
        check_fits(len(wanted) * height * width * 3 * itemsize, f"{name}: reading {len(wanted)} frames at {height}x{width}",
                   "ask for fewer frames or a smaller size")  # fmt: skip
    except InputError as e:
        raise VideoReadError(str(e)) from None
    frames_thwc = np.empty((len(wanted), height, width, 3), dtype=np.uint8)
    filled, broke = _decode_into(name, index, wanted, frames_thwc, threads, keep_going=allow_partial)
    partial = not filled.all()
    if partial:
        if not allow_partial:
            why = "decoding failed" if broke else "frames were missing"
            raise VideoReadError(
                f"{name}: {why} after {int(filled.sum())} of {len(wanted)} requested frames; the file is "
                f"truncated or corrupt; pass allow_partial=True (--allow-partial) to use the frames that decode"
            )
        if not filled.any():
            raise VideoReadError(f"{name}: none of the requested frames could be decoded")
        frames_thwc, wanted = frames_thwc[filled], wanted[filled]
    if partial or info.truncated:
        warnings.warn(
            f"{name}: truncated or corrupt; using the {len(wanted)} frames that decode",
            FilmstripWarning,
            stacklevel=2,
        )

    if dtype == torch.uint8:
        # A (C, T, H, W) view of the (T, H, W, C) buffer: no copy. Float conversion below
        # writes a contiguous tensor since it has to copy anyway.
        video = torch.from_numpy(frames_thwc).permute(3, 0, 1, 2)
    elif dtype.is_floating_point:
        video = to_float_cthw(frames_thwc, dtype)
    else:
        raise VideoReadError(f"dtype must be torch.uint8 or a float dtype, got {dtype}")
    clip_fps = fps if fps is not None else info.fps
    return video, ClipInfo(
        video=info,
        indices=tuple(int(i) for i in wanted),
        timestamps=tuple(float(index.timestamps[i]) for i in wanted),
        fps=float(clip_fps),
        partial=partial or info.truncated,
    )
