"""Typed errors for video I/O: each carries one sentence a person can act on."""

from filmstrip.errors import FilmstripError


class VideoReadError(FilmstripError):
    """A video could not be read as asked: missing, not a video, corrupt, or too short."""


class VideoWriteError(FilmstripError):
    """A video could not be written: unsupported format, bad shape or bad frame rate."""
