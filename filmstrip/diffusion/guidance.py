"""Classifier-free guidance over any ordered set of conditions, batched in one forward.

Conditions are stacked in an order, e.g. (image, text). Level i is the prediction with the
first i conditions real and the rest at their null (v_0: all null; v_k: all real), and scale
s_i pushes from level i - 1 to level i:

    v = v_0 + s_1 (v_1 - v_0) + s_2 (v_2 - v_1) + ... + s_k (v_k - v_{k-1}).

With one condition this is ordinary CFG, v_u + s (v_c - v_u); with (image, text) it is the
separate image and text scales of InstructPix2Pix (Brooks et al., 2023). The plan runs only
the levels the sum needs: neighbouring equal scales merge (s (v_b - v_a) over a run), and a
leading run at scale 1 starts the sum at its end, so with every scale at 1 a single, fully
conditional pass remains. The needed levels run as one batch (one per set of keyframes, when
levels differ in them: see frames.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace

import torch

from filmstrip.diffusion.frames import with_frames
from filmstrip.diffusion.sampling import VelocityFn
from filmstrip.errors import InputError
from filmstrip.models.conditioning import Conditioning

Model = Callable[[torch.Tensor, torch.Tensor, Conditioning], torch.Tensor]


def guidance_plan(scales: Sequence[float]) -> tuple[int, list[tuple[int, float]]]:
    """(base level, [(level, scale), ...]): v = v_base + sum of scale * (v_level - v_previous)."""
    runs: list[tuple[int, float]] = []
    for level, s in enumerate(scales, start=1):
        if not math.isfinite(s):
            raise InputError(f"guidance scale {level} is {s}: use a finite number (1 = off)")
        if runs and runs[-1][1] == s:
            runs[-1] = (level, s)
        else:
            runs.append((level, s))
    base = 0
    if runs and runs[0][1] == 1.0:
        base, runs = runs[0][0], runs[1:]
    return base, runs


def combine(v_by_level: dict[int, torch.Tensor], base: int, runs: list[tuple[int, float]]) -> torch.Tensor:
    v, previous = v_by_level[base], base
    for level, s in runs:
        v = v + s * (v_by_level[level] - v_by_level[previous])
        previous = level
    return v


def guided(model: Model, levels: Sequence[Conditioning], scales: Sequence[float]) -> VelocityFn:
    """A velocity function (x, t) -> v that guides `model` over `levels` (k + 1 conditionings,
    from all-null to all-real) with k `scales`. The levels must share a batch size B; the
    forward runs on (number of needed levels) x B rows."""
    if len(levels) != len(scales) + 1:
        raise InputError(f"{len(scales)} guidance scales need {len(scales) + 1} levels, got {len(levels)}")
    base, runs = guidance_plan(scales)
    needed = [base, *(level for level, _ in runs)]
    # Levels that share their keyframes (the same extra latent frames) run as one batch.
    groups: dict[tuple, list[int]] = {}
    for i in needed:
        times = levels[i].key_times
        groups.setdefault(() if times is None else tuple(times.tolist()), []).append(i)
    batches = [(idx, Conditioning.cat([levels[i] for i in idx]) if len(idx) > 1 else levels[idx[0]])
               for idx in groups.values()]  # fmt: skip
    # Every step reads the same text: the model's work on it is kept for this run only.
    batches = [(idx, replace(cond, memo={})) for idx, cond in batches]

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        v_by_level = {}
        for idx, cond in batches:
            n = len(idx)
            v = with_frames(model, torch.cat([x] * n), torch.cat([t] * n), cond)
            v_by_level.update(zip(idx, v.chunk(n), strict=True))
        if len(needed) == 1:
            return v_by_level[base]
        return combine(v_by_level, base, runs)

    return velocity
