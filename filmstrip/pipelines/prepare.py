"""Prepare steps: each turns one kind of condition into a (null, real) pair of `Conditioning`s
for the same rows, and `stack_levels` orders the pairs into guidance levels.

A new kind of conditioning is a new prepare function here (and, for clean frames,
`denoise.place_frames`); `denoise` itself never changes.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

from filmstrip.diffusion.frames import latent_frame_mean
from filmstrip.errors import FilmstripWarning, InputError
from filmstrip.models.conditioning import Conditioning
from filmstrip.text.encoder import TextEncoder

Pair = tuple[Conditioning, Conditioning]  # (null, real)


def prepare_text(encoder: TextEncoder | None, prompts: Sequence[str], negative: str = "") -> Pair:
    """Prompts as token states; the null is the negative prompt ("" : unconditional), which is
    what the model saw for dropped captions in training."""
    if encoder is None:
        raise InputError("this model takes no text; give it its own conditions instead of a prompt")
    check_prompts(prompts)
    if not isinstance(negative, str):
        raise InputError(f"the negative prompt is one text for every video, got a {type(negative).__name__}")
    states, mask = encoder.encode(list(prompts))
    null_states, null_mask = encoder.encode([negative] * len(prompts))
    return Conditioning(null_states, null_mask), Conditioning(states, mask)


def check_prompts(prompts: Sequence[str]) -> None:
    if isinstance(prompts, str):  # a lone string would be read as one prompt per character
        raise InputError(
            f"prompts are a list, one video each: pass [{prompts[:40]!r}], not the string itself"
        )
    if any(not isinstance(p, str) for p in prompts):
        raise InputError("each prompt is a string")
    if not prompts or any(not p.strip() for p in prompts):
        raise InputError("the prompt is empty: describe the video, e.g. 'a red circle moves to the right'")


def warn_unknown_words(trained_on: str, prompts: Sequence[str]) -> None:
    """A model trained on `shapes` captions (`trained_on`, from its checkpoint) knows their few
    dozen words; any other word is noise to it, and a prompt such as "a cat runs on a beach"
    would give shapes without a word of why."""
    if not trained_on.startswith("shapes"):
        return
    from filmstrip.data.motion import words_of
    from filmstrip.data.shapes import caption_words

    unknown = sorted({w for p in prompts for w in words_of(p)} - caption_words())
    if unknown:
        warnings.warn(
            f"the model never read {', '.join(repr(w) for w in unknown[:8])}"
            f"{' and more' if len(unknown) > 8 else ''}: it was trained on `shapes` captions "
            "(colours, circle, square, triangle, small or large, moving up, down, left, right or "
            "diagonally) and draws only those",
            FilmstripWarning,
            stacklevel=3,
        )


def warn_untrained_shape(shapes: Sequence[Sequence[int]], frames: int, height: int, width: int) -> None:
    """Say when a video is asked at a size the model never trained on, or longer than any clip
    it trained on (`shapes`: its checkpoint's (frames, height, width, clips), most clips first):
    a DiT's attention and positions are learned at the shapes it saw, and far from them it
    makes blur or repeats."""
    if not shapes:
        return
    sizes = [(h, w) for _, h, w, _ in shapes]
    longest = max(t for t, *_ in shapes)
    if (height, width) in sizes and frames <= longest:
        return
    if len(shapes) == 1:
        seen = f"{shapes[0][2]}x{shapes[0][1]}"
    else:  # a folder's buckets: how much of the set each holds
        seen = ", ".join(f"{w}x{h} ({n} clip{'s' * (n != 1)})" for _, h, w, n in shapes[:4])
        seen += " and more" if len(shapes) > 4 else ""
    t, h, w, _ = shapes[0]
    warnings.warn(
        f"the model was trained on clips of up to {longest} frames at {seen}; {frames} frames at "
        f"{width}x{height} lie outside them and may come out poorly (what it saw most: --size {w}x{h} "
        f"--frames {t})",
        FilmstripWarning,
        stacklevel=3,
    )


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


def prepare_motion(strength: float | Sequence[float], batch: int, latent_frames: int, device) -> Conditioning:
    """A motion strength (a share of data/motion.FULL_SPEED), one for the batch or one per
    row, on every latent frame, as the `motion` vector a motion-conditioned model trained on.
    It goes into every guidance level (see `everywhere`): guidance then pushes text and frames
    at the speed asked for."""
    levels = torch.tensor(strength, dtype=torch.float32).reshape(-1, 1, 1)  # checked here, not on the device
    if not (torch.isfinite(levels).all() and ((levels >= 0) & (levels <= 1)).all()):
        raise InputError(f"motion strength is in [0, 1], got {strength}")
    if len(levels) not in (1, batch):
        raise InputError(f"{len(levels)} motion strengths for a batch of {batch}: give one, or one per row")
    return Conditioning(vectors={"motion": levels.expand(batch, latent_frames, 1).contiguous().to(device)})


def prepare_control(
    maps_bcthw: torch.Tensor, batch: int, frames: int, height: int, width: int, device
) -> Conditioning:
    """Structure maps (1 or B, C, frames, height, width) in [0, 1] for a ControlNet, given at
    every guidance level (see `everywhere`), one set for the whole batch or one per video."""
    if maps_bcthw.ndim != 5 or maps_bcthw.shape[0] not in (1, batch):
        raise InputError(f"structure maps are (1 or {batch}, C, T, H, W), got {tuple(maps_bcthw.shape)}")
    if tuple(maps_bcthw.shape[2:]) != (frames, height, width):
        raise InputError(
            f"structure maps of {tuple(maps_bcthw.shape[2:])} (frames, height, width) for a video of "
            f"{(frames, height, width)}: give one map per frame at the video's size"
        )
    if not torch.isfinite(maps_bcthw).all() or maps_bcthw.min() < 0 or maps_bcthw.max() > 1:
        raise InputError("structure maps hold values outside [0, 1]")
    return Conditioning(control=maps_bcthw.expand(batch, *maps_bcthw.shape[1:]).float().to(device))


def prepare_camera(path, batch: int, frames: int, latent_frames: int, device) -> Conditioning:
    """A camera path (data/camera.CameraPath, one entry per pixel frame) as the `camera`
    vector a camera-conditioned model trained on: its features averaged over each latent
    frame's pixel frames, given at every guidance level."""
    from filmstrip.data.camera import camera_features

    if len(path) != frames:
        raise InputError(
            f"a camera path of {len(path)} frames for a video of {frames}: give one entry per frame"
        )
    feats = torch.from_numpy(camera_features(path.as_array())).float()[None]  # (1, T, 3)
    feats = latent_frame_mean(feats, latent_frames)  # (1, T', 3)
    return Conditioning(vectors={"camera": feats.expand(batch, -1, -1).to(device)})


def everywhere(pair: Pair, cond: Conditioning) -> Pair:
    """A pair with `cond` added to both its null and its real side."""
    return pair[0].merge(cond), pair[1].merge(cond)


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
