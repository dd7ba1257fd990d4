"""Video extension: continue a clip from its last frames.

    longer = extend(pipe, clip, ["a red circle moves to the right"], GenerateConfig(), context=9)

The last `context` frames (4k + 1 of them) are given in place at the start of a new window of
`cfg.frames` frames (a `VideoCondition` at frame 0: the causal VAE encodes them exactly as the
start of a clip), the model draws the rest of the window, and the clip comes back followed by
the `cfg.frames - context` new frames. Calling it again on its own output extends further.
Any text-to-video pipeline extends; the bundled causal model (`load_pipeline("t2v_causal")`,
which `generate --extend` uses by default) keeps each object's direction across the join
more often than the bidirectional one, having been trained to continue clean frames
(diffusion forcing): 91.3% against 86.2% of objects (docs/RESULTS.md, session 26).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from filmstrip.errors import InputError
from filmstrip.pipelines.conditions import VideoCondition
from filmstrip.pipelines.denoise import Pipeline
from filmstrip.pipelines.generate import GenerateConfig, generate


def default_context(pipe: Pipeline, frames: int) -> int:
    """The most frames of the form 4k + 1 that leave about half the window to generate
    (9 of 17: 8 new frames per call)."""
    factor = pipe.vae.cfg.temporal_factor
    return (frames // 2) // factor * factor + 1


@torch.no_grad()
def extend(
    pipe: Pipeline,
    clip: torch.Tensor,
    prompts: Sequence[str],
    cfg: GenerateConfig,
    context: int | None = None,
    negative: str = "",
) -> torch.Tensor:
    """clip: (3, T, H, W) in [-1, 1], or (B, 3, T, H, W) with one clip per prompt. Returns
    (B, 3, T + cfg.frames - context, H, W): the clip, then what follows it."""
    clips = clip[None] if clip.ndim == 4 else clip
    if clips.ndim != 5 or clips.shape[1] != 3:
        raise InputError(f"a clip to extend is (3, T, H, W) or (B, 3, T, H, W), got {tuple(clip.shape)}")
    if clips.shape[0] not in (1, len(prompts)):
        raise InputError(
            f"{clips.shape[0]} clips for {len(prompts)} prompts: give one clip, or one per prompt"
        )
    factor = pipe.vae.cfg.temporal_factor
    context = default_context(pipe, cfg.frames) if context is None else context
    if context < 1 or (context - 1) % factor:
        raise InputError(f"the context is 4k + 1 frames (1, 5, 9, ...), got {context}")
    if context >= cfg.frames:
        raise InputError(
            f"a context of {context} frames leaves nothing new in a window of {cfg.frames} frames"
        )
    if clips.shape[2] < context:
        raise InputError(
            f"the clip has {clips.shape[2]} frames, fewer than the {context} context frames asked for"
        )
    tail = clips[:, :, -context:]
    if clips.shape[0] == 1:
        conditions = [VideoCondition(tail[0], 0)]
    else:  # each prompt continues its own clip
        conditions = [[VideoCondition(t, 0)] for t in tail]
    new = generate(pipe, prompts, cfg, negative, conditions)
    base = clips.to(new.device).expand(new.shape[0], -1, -1, -1, -1)
    return torch.cat([base, new[:, :, context:]], dim=2)
