"""Prepare steps: each turns one kind of condition into a (null, real) pair of `Conditioning`s
for the same rows, and `stack_levels` orders the pairs into guidance levels.

A new kind of conditioning is a new prepare function here (and, for clean frames,
`denoise.place_frames`); `denoise` itself never changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from filmstrip.errors import InputError
from filmstrip.models.conditioning import Conditioning
from filmstrip.text.encoder import TextEncoder

Pair = tuple[Conditioning, Conditioning]  # (null, real)


def prepare_text(encoder: TextEncoder | None, prompts: Sequence[str], negative: str = "") -> Pair:
    """Prompts as token states; the null is the negative prompt ("" : unconditional), which is
    what the model saw for dropped captions in training."""
    if encoder is None:
        raise InputError("this model takes no text; give it its own conditions instead of a prompt")
    check_prompts(prompts)
    states, mask = encoder.encode(list(prompts))
    null_states, null_mask = encoder.encode([negative] * len(prompts))
    return Conditioning(null_states, null_mask), Conditioning(states, mask)


def check_prompts(prompts: Sequence[str]) -> None:
    if not prompts or any(not p.strip() for p in prompts):
        raise InputError("the prompt is empty: describe the video, e.g. 'a red circle moves to the right'")


def prepare_vector(name: str, values_btk: torch.Tensor) -> Pair:
    """A per-frame condition (B, T', dim) at the latent frame rate; its null is its absence."""
    if values_btk.ndim != 3:
        raise InputError(
            f"condition {name!r} must be (batch, latent frames, dim), got {tuple(values_btk.shape)}"
        )
    if not torch.isfinite(values_btk).all():
        raise InputError(f"condition {name!r} holds NaN or Inf values")
    absent = torch.zeros(values_btk.shape[0], dtype=torch.bool)
    return (
        Conditioning(vectors={name: values_btk}, present={name: absent}),
        Conditioning(vectors={name: values_btk}),
    )


def stack_levels(pairs: Sequence[Pair]) -> list[Conditioning]:
    """Guidance levels for conditions in this order: level i has the first i real and the rest
    null. With one scale per pair, scale i pushes from level i - 1 to level i."""
    levels = []
    for i in range(len(pairs) + 1):
        level = Conditioning()
        for j, (null, real) in enumerate(pairs):
            level = level.merge(real if j < i else null)
        levels.append(level)
    return levels
