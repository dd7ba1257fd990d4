"""Constant-velocity motion that bounces off the walls, and the words for it.

The procedural datasets place objects in normalised coordinates (x right, y down, both in
[0, 1]) with velocities in units per second, so one scene renders the same motion at any
size and frame rate. Bouncing is solved in closed form by folding the straight path into
the allowed interval (a triangle wave), so positions at any time are exact, not stepped.
"""

from __future__ import annotations

import math
import re

import numpy as np

# Eight compass directions plus "still"; image y grows downward, so "up" is -y.
DIRECTIONS: dict[str, tuple[float, float]] = {
    "right": (1.0, 0.0),
    "left": (-1.0, 0.0),
    "up": (0.0, -1.0),
    "down": (0.0, 1.0),
    "up-right": (math.sqrt(0.5), -math.sqrt(0.5)),
    "up-left": (-math.sqrt(0.5), -math.sqrt(0.5)),
    "down-right": (math.sqrt(0.5), math.sqrt(0.5)),
    "down-left": (-math.sqrt(0.5), math.sqrt(0.5)),
    "still": (0.0, 0.0),
}

# Several ways to say each direction, so captions vary in wording but never in meaning.
_DIRECTION_PHRASES: dict[str, tuple[str, ...]] = {
    "right": ("to the right", "rightward", "towards the right"),
    "left": ("to the left", "leftward", "towards the left"),
    "up": ("up", "upward", "towards the top"),
    "down": ("down", "downward", "towards the bottom"),
    "up-right": ("up and to the right", "diagonally up and right", "towards the top right"),
    "up-left": ("up and to the left", "diagonally up and left", "towards the top left"),
    "down-right": ("down and to the right", "diagonally down and right", "towards the bottom right"),
    "down-left": ("down and to the left", "diagonally down and left", "towards the bottom left"),
}
# The motion condition's unit (`--motion`): a clip's speed in frame short sides per second
# divided by this, so that `--motion 1` asks for twice the fastest clips of the default
# `shapes` set (0.1-0.25) and a model trained on 0-0.5 covers 0..1.
FULL_SPEED = 0.5

_MOVING_VERBS = ("moves", "drifts", "slides", "glides", "travels")
_STILL_PHRASES = ("stays still", "does not move", "rests in place", "stays where it is")
_BOUNCE_PHRASES = ("and bounces off the wall", "then bounces back", "and bounces off the edge")


def fold(p_t: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Fold unbounded positions into [lo, hi] as if reflected at both ends (a triangle wave)."""
    span = hi - lo
    if span <= 0:
        return np.full_like(p_t, (lo + hi) / 2)
    u = np.mod(p_t - lo, 2 * span)
    return lo + np.where(u > span, 2 * span - u, u)


def bouncing_path(
    start: tuple[float, float],
    velocity: tuple[float, float],
    times: np.ndarray,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
) -> tuple[np.ndarray, bool]:
    """Positions (T, 2) in (x, y) at `times` (seconds), and whether a wall was hit.

    x_range and y_range bound the object's reference point (its centre, kept inside the
    frame by its extent on each side).
    """
    free_x = start[0] + velocity[0] * times
    free_y = start[1] + velocity[1] * times
    xy = np.stack([fold(free_x, *x_range), fold(free_y, *y_range)], axis=-1)
    bounced = bool(np.abs(xy - np.stack([free_x, free_y], -1)).max() > 1e-9)
    return xy, bounced


def describe_motion(direction: str, bounced: bool, rng: np.random.Generator) -> str:
    """A varied verb phrase for one object's motion: 'drifts to the left and bounces off the wall'."""
    if direction == "still":
        return str(rng.choice(_STILL_PHRASES))
    phrase = f"{rng.choice(_MOVING_VERBS)} {rng.choice(_DIRECTION_PHRASES[direction])}"
    if bounced:
        phrase += f" {rng.choice(_BOUNCE_PHRASES)}"
    return phrase


def words_of(text: str) -> list[str]:
    """The words of a caption or prompt, lower-cased, without punctuation."""
    return re.findall(r"[a-z]+", text.lower())


def motion_words() -> frozenset[str]:
    """Every word `describe_motion` and `join_clauses` can write."""
    phrases = [*_MOVING_VERBS, *_STILL_PHRASES, *_BOUNCE_PHRASES, "while and as"]
    phrases += [p for options in _DIRECTION_PHRASES.values() for p in options]
    return frozenset(w for p in phrases for w in words_of(p))


def join_clauses(clauses: list[str], rng: np.random.Generator) -> str:
    """Join per-object clauses the way people do: 'A while B', 'A and B', 'A, B and C'."""
    if len(clauses) == 1:
        return clauses[0]
    if len(clauses) == 2:
        return f"{clauses[0]}{rng.choice([' while ', ' and ', ', as ', ' as '])}{clauses[1]}"
    return ", ".join(clauses[:-1]) + f"{rng.choice([' and ', ', and ', ' while '])}{clauses[-1]}"


def track_speeds(tracks_ot2: np.ndarray, side: float, fps: float) -> np.ndarray:
    """Per-frame speed (T,) of object tracks (O, T, 2) in pixels, in frame short sides per
    second: the mean over objects of each frame's step from the one before (frame 0 takes
    frame 1's step, so the array lines up with the frames). A still object counts as 0."""
    tracks = np.asarray(tracks_ot2, dtype=np.float64)
    if tracks.ndim != 3 or tracks.shape[1] < 2:
        raise ValueError(f"tracks are (objects, frames >= 2, 2), got {tracks.shape}")
    steps = np.linalg.norm(np.diff(tracks, axis=1), axis=-1).mean(axis=0) * fps / side  # (T - 1,)
    return np.concatenate([steps[:1], steps])
