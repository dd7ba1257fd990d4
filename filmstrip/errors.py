"""The errors filmstrip raises for people.

Every error a user can cause (a bad path, an unreadable video, a wrong option, a checkpoint of
the wrong kind) is a `FilmstripError` carrying one sentence that names what was wrong and what
to do. The CLI prints that sentence and exits 1; anything else is a bug and keeps its
traceback. `FILMSTRIP_DEBUG=1` shows the traceback of ours too.

What a person should know but that need not stop the work (a damaged packet skipped, a prompt
cut, a picture cropped) is a `FilmstripWarning`, which the CLI prints as one line too.
"""

from __future__ import annotations


class FilmstripError(Exception):
    """A problem with the user's input or files, described in one actionable sentence."""


class InputError(FilmstripError, ValueError):
    """A bad argument, option, shape or config value. Also a ValueError, so code that caught
    ValueError before keeps working."""


class TrainingError(FilmstripError, FloatingPointError):
    """A training run that cannot go on (e.g. gradients that stay non-finite)."""


class FilmstripWarning(UserWarning):
    """Something about the user's input that the work goes on past, in one sentence. A
    UserWarning, so filters and `pytest.warns(UserWarning)` written before still match it."""
