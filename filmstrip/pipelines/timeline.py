"""A timeline of prompts for one long rollout: "0s: a red circle moves right", "20s: ...".

Each entry starts at a time in seconds and holds until the next one; the first starts at 0.
A single entry without a time is the whole video's prompt. Parsing is pure and strict, so a
typo fails before any model work with one sentence naming the entry.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from filmstrip.errors import InputError

_ENTRY = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*s?\s*:\s*(.*)$")


@dataclass(frozen=True)
class Timeline:
    starts: tuple[float, ...]  # seconds, from 0, strictly increasing
    prompts: tuple[str, ...]

    def prompt_at(self, seconds: float) -> str:
        """The prompt in force at `seconds`."""
        return self.prompts[max(0, bisect.bisect_right(self.starts, seconds) - 1)]

    def check_length(self, seconds: float) -> None:
        if self.starts[-1] >= seconds:
            raise InputError(
                f"the prompt at {self.starts[-1]:g}s starts after the video ends ({seconds:g}s): "
                "make the video longer or move the prompt earlier"
            )


def parse_timeline(entries: Sequence[str]) -> Timeline:
    """["0s: a red circle moves right", "20s: a blue square moves up"] -> Timeline. A lone
    entry without a time holds for the whole video."""
    if not entries:
        raise InputError("give a prompt")
    if len(entries) == 1 and not _ENTRY.match(entries[0]):
        prompt = entries[0].strip()
        if not prompt:
            raise InputError("the prompt is empty")
        return Timeline((0.0,), (prompt,))
    starts, prompts = [], []
    for entry in entries:
        m = _ENTRY.match(entry)
        if not m:
            raise InputError(
                f"timeline entry {entry!r} has no start time: write it as 'SECONDS s: PROMPT', e.g. '20s: a blue square moves up'"
            )
        start, prompt = float(m.group(1)), m.group(2).strip()
        if not math.isfinite(start):
            raise InputError(f"timeline entry {entry!r}: the start time is not a number")
        if not prompt:
            raise InputError(f"timeline entry {entry!r} has no prompt after the time")
        if starts and start <= starts[-1]:
            raise InputError(
                f"timeline entry {entry!r} starts at {start:g}s, not after the entry before it ({starts[-1]:g}s): "
                "list the prompts in time order"
            )
        starts.append(start)
        prompts.append(prompt)
    if starts[0] != 0.0:
        raise InputError(f"the first timeline entry starts at {starts[0]:g}s; the video needs a prompt at 0s")
    return Timeline(tuple(starts), tuple(prompts))


@dataclass(frozen=True)
class LongVideo:
    """What every way of making a long video is asked for (stream.py, longform.py)."""

    seconds: float = 10.0
    fps: float = 8.0
    height: int = 64
    width: int = 64
    steps: int = 20
    text_scale: float = 4.0
    seed: int = 0

    def __post_init__(self):
        if not (
            math.isfinite(self.seconds) and self.seconds > 0 and math.isfinite(self.fps) and self.fps > 0
        ):
            raise InputError(f"seconds and fps must be positive, got {self.seconds} and {self.fps}")
        if self.steps < 1:
            raise InputError(f"need at least one sampling step, got {self.steps}")
        if not math.isfinite(self.text_scale):
            raise InputError(f"the guidance scale must be a finite number, got {self.text_scale}")

    @property
    def frames(self) -> int:
        return max(1, round(self.seconds * self.fps))
