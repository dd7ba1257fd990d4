"""Video I/O: read, probe and write clips in the project's `(C, T, H, W)` layout.

Names load from their modules on first use (PEP 562): writing a clip, or the layout helpers,
do not import the reader's decoding stack (OpenCV)."""

import importlib

_HOMES = {
    "VideoReadError": "errors",
    "VideoWriteError": "errors",
    "to_float_cthw": "layout",
    "to_uint8_thwc": "layout",
    "ClipInfo": "reader",
    "VideoInfo": "reader",
    "frame_timestamps": "reader",
    "iter_frames": "reader",
    "probe": "reader",
    "read_video": "reader",
    "check_output_path": "writer",
    "write_video": "writer",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
