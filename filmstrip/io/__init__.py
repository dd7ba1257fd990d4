"""Video I/O: read, probe and write clips in the project's `(C, T, H, W)` layout."""

from filmstrip.io.errors import VideoReadError, VideoWriteError
from filmstrip.io.layout import to_float_cthw, to_uint8_thwc
from filmstrip.io.reader import ClipInfo, VideoInfo, frame_timestamps, iter_frames, probe, read_video
from filmstrip.io.writer import check_output_path, write_video

__all__ = [
    "ClipInfo",
    "VideoInfo",
    "VideoReadError",
    "VideoWriteError",
    "check_output_path",
    "frame_timestamps",
    "iter_frames",
    "probe",
    "read_video",
    "to_float_cthw",
    "to_uint8_thwc",
    "write_video",
]
