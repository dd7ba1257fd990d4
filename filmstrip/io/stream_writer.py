"""Writing a video while it is being made: fragmented MP4 to a file or to stdout.

A plain MP4 keeps its index (the `moov` box) at the end, so the file is unplayable until the
writer closes it, and a crash loses everything. A fragmented MP4 writes an empty index first
and then self-contained fragments (`moof` + `mdat`), one per keyframe: every finished
fragment is playable as soon as it is on disk, a player can follow the file as it grows, an
interrupted run (Ctrl-C, or a killed process) leaves a valid file of what was written, and the
same bytes can go down a pipe (`-o -`), which cannot seek back to patch an index.

A keyframe every `keyframe_seconds` bounds what an interruption can lose; x264's zero-latency
tuning makes every frame leave the encoder at once instead of after a look-ahead.
"""

from __future__ import annotations

import os
import sys
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import cv2
import numpy as np

from filmstrip.io.errors import VideoWriteError
from filmstrip.io.layout import ArrayLike, to_uint8_thwc
from filmstrip.io.writer import check_output_path


def check_stream_path(path: str | os.PathLike) -> Path:
    """Refuse, before any work, a file a stream cannot be written to (`check_output_path`, and
    only .mp4: the one fragmented format here)."""
    out = check_output_path(path)
    if out.suffix.lower() != ".mp4":
        raise VideoWriteError(f"{out}: streaming writes .mp4 (fragmented), not {out.suffix}")
    return out


class StreamWriter:
    """Append frames to a growing fragmented MP4 (H.264). `path` "-" writes to stdout.

    with StreamWriter("out.mp4", fps=8, height=64, width=64) as out:
        for chunk in chunks:            # (3, t, H, W) floats in [-1, 1] or uint8
            out.write(chunk)
    """

    def __init__(
        self,
        path: str | os.PathLike | BinaryIO,
        fps: float,
        height: int,
        width: int,
        quality: int | None = None,
        keyframe_seconds: float = 1.0,
    ):
        if not (np.isfinite(fps) and fps > 0):
            raise VideoWriteError(f"fps must be a positive number, got {fps}")
        if height % 2 or width % 2 or height < 2 or width < 2:
            raise VideoWriteError(f"H.264 needs an even size, got {height}x{width}")
        self.size = (height, width)
        self.frames = 0
        if path == "-" or not isinstance(path, str | os.PathLike):
            target, self.path = (sys.stdout.buffer if path == "-" else path), None
        else:
            self.path = check_stream_path(path)
            target = str(self.path)
        options = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"}
        try:
            self._container = av.open(target, mode="w", format="mp4", options=options)
        except (OSError, av.FFmpegError) as e:
            raise VideoWriteError(f"{self.path or 'stdout'}: cannot open for writing ({e})") from None
        gop = max(1, round(fps * keyframe_seconds))
        codec = {"crf": str(18 if quality is None else quality), "preset": "veryfast", "tune": "zerolatency"}
        self._stream = self._container.add_stream(
            "libx264", rate=Fraction(fps).limit_denominator(1001), options=codec
        )
        self._stream.height, self._stream.width = height, width
        self._stream.pix_fmt = "yuv420p"
        self._stream.codec_context.gop_size = gop

    def write(self, video: ArrayLike) -> None:
        """Append a (C, T, H, W) chunk (uint8, or float in [-1, 1])."""
        if self._container is None:
            raise VideoWriteError("this stream is closed")
        try:
            frames = to_uint8_thwc(video)
        except ValueError as e:
            raise VideoWriteError(str(e)) from None
        if frames.shape[1:3] != self.size:
            raise VideoWriteError(
                f"frames of {frames.shape[1]}x{frames.shape[2]} in a {self.size[0]}x{self.size[1]} stream"
            )
        for frame_hw3 in frames:
            yuv = cv2.cvtColor(np.ascontiguousarray(frame_hw3), cv2.COLOR_RGB2YUV_I420)
            self._container.mux(self._stream.encode(av.VideoFrame.from_ndarray(yuv, format="yuv420p")))
            self.frames += 1

    def close(self) -> Path | None:
        """Flush the encoder and the last fragment. Safe to call twice."""
        if self._container is not None:
            container, self._container = self._container, None
            try:
                container.mux(self._stream.encode(None))
            finally:
                container.close()
        return self.path

    def __enter__(self) -> StreamWriter:
        return self

    def __exit__(self, *exc) -> None:
        # Also on Ctrl-C (KeyboardInterrupt): what was written stays a playable file.
        self.close()
