"""The errors filmstrip raises for people.

Every error a user can cause (a bad path, an unreadable video, a wrong option, a checkpoint of
the wrong kind) is a `FilmstripError` carrying one sentence that names what was wrong and what
to do. The CLI prints that sentence and exits 1; anything else is a bug and keeps its
traceback. `FILMSTRIP_DEBUG=1` shows the traceback of ours too.
"""

from __future__ import annotations


class FilmstripError(Exception):
    """A problem with the user's input or files, described in one actionable sentence."""


class InputError(FilmstripError, ValueError):
    """A bad argument, option, shape or config value. Also a ValueError, so code that caught
    ValueError before keeps working."""


class TrainingError(FilmstripError, FloatingPointError):
    """A training run that cannot go on (e.g. gradients that stay non-finite)."""
