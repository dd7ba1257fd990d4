"""Editing a given clip with the text-to-video model: video-to-video and inversion.

    video = video_to_video(pipe, clip, ["a blue circle moves up"], GenerateConfig(), strength=0.6)
    video = edit(pipe, clip, ["a red circle moves up"], ["a blue circle moves up"],
                 GenerateConfig(text_scale=EDIT_TEXT_SCALE))

* **Video-to-video (SDEdit, Meng et al., 2022).** The clip's latents are noised to level
  `strength` with the seed's noise, x = (1 - s) z + s n, and denoised from there under the new
  prompt along the part of the usual schedule below s. Strength 0 returns the clip's own
  latents; strength 1 is plain text-to-video from the same seed, ignoring the clip.
* **Inversion.** The flow's ODE is integrated backwards, from the clip's latents at t = 0 to
  t = 1, under the clip's own prompt; integrating forwards again from that noise gives the clip
  back (up to the solver's error), and under an edited prompt changes what the prompt changes
  while the noise keeps the layout and motion. Guidance is off during inversion by default:
  guided velocities do not retrace the path. The noise alone keeps little of the layout (on
  recoloured `shapes` scenes 6% of objects stay within 2 px): a new prompt bends the path
  from its first step, and a colour word can bind to the wrong object. So the edit also
  shares the clip's attention (pipelines/attention_share.py): at every step the clip's own
  state on its inversion path, at the same noise level, runs under its own prompt, and the
  edit reads that pass's self-attention (layout, motion) and its cross-attention carried word
  for word onto the new prompt (each place reads the new colour where it read the old one).
  `strength` < 1 inverts only part of the way, as SDEdit does, from the clip's own path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from filmstrip.diffusion.flow import add_noise
from filmstrip.diffusion.guidance import guided
from filmstrip.diffusion.sampling import sample
from filmstrip.errors import InputError
from filmstrip.io.memory import check_fits
from filmstrip.models.conditioning import Conditioning
from filmstrip.pipelines.attention_share import AttentionShare, recorded_bytes, token_alignment
from filmstrip.pipelines.denoise import (
    Pipeline,
    decode,
    denoise,
    encode,
    finite,
    initial_noise,
    make_schedule,
)
from filmstrip.pipelines.generate import GenerateConfig
from filmstrip.pipelines.prepare import prepare_text, stack_levels

# Defaults measured on 100 recoloured `shapes` scenes (docs/RESULTS.md, session 24): with the
# clip's attention shared, text scale 2 keeps objects within 2 px more often than 4 (75% vs
# 59%) at the same colour accuracy, and inverting to 0.8 rather than 1 keeps a little more.
EDIT_TEXT_SCALE = 2.0
EDIT_STRENGTH = 0.8
SDEDIT_STRENGTH = 0.6


def partial_schedule(sched: torch.Tensor, strength: float) -> torch.Tensor:
    """The rows of a (steps + 1, T) schedule below `strength`, starting at `strength`."""
    if not 0.0 <= strength <= 1.0:
        raise InputError(f"strength is a noise level in [0, 1], got {strength}")
    below = sched[(sched < strength).all(dim=1)]
    start = torch.full((1, sched.shape[1]), float(strength), dtype=sched.dtype)
    return torch.cat([start, below]) if strength > 0 else start


def time_key(t_row: torch.Tensor) -> tuple[float, ...]:
    """A schedule row as a dict key: the noise levels at which a path's state was taken."""
    return tuple(round(float(v), 6) for v in t_row)


@dataclass(frozen=True)
class Sharing:
    """What the edit takes from the clip's own pass (pipelines/attention_share.py), by noise
    level: self-attention (layout, motion) while t >= self_until, cross-attention (which
    place reads which word, carried to the edited prompt's words by `token_alignment`) while
    t >= cross_until."""

    self_until: float = 0.5
    cross_until: float = 0.2


SHARING = Sharing()


def check_pairs(clips: int, source_prompts: Sequence[str], target_prompts: Sequence[str]) -> None:
    if not len(source_prompts) == len(target_prompts) == clips:
        raise InputError(
            f"{clips} clip(s), {len(source_prompts)} source prompt(s) and {len(target_prompts)} edited "
            "prompt(s): give one of each per clip"
        )


def shared_velocity(
    pipe: Pipeline,
    path: dict[tuple[float, ...], torch.Tensor],
    source_prompts: Sequence[str],
    target_prompts: Sequence[str],
    null: Conditioning,
    target: Conditioning,
    text_scale: float,
    sharing: Sharing,
):
    """Guided velocity under `target` (from null to target at `text_scale`) whose attention is
    the clip's own where `sharing` says: at each step the clip's state on `path` at the same
    levels runs under `source_prompts` first, recording; its cross-attention reaches the
    target's words through `token_alignment`."""
    x0 = next(iter(path.values()))
    check_pairs(x0.shape[0], source_prompts, target_prompts)
    device = target.context.device
    source = prepare_text(pipe.text, source_prompts)[1].to(device)
    alignment = torch.stack([
        token_alignment(pipe.text.tokenize(a), pipe.text.tokenize(b), source.context.shape[1], target.context.shape[1])
        for a, b in zip(source_prompts, target_prompts, strict=True)
    ]).to(device)  # fmt: skip
    cfg = pipe.dit.cfg
    tokens = (x0.shape[2] // cfg.patch[0]) * (x0.shape[3] // cfg.patch[1]) * (x0.shape[4] // cfg.patch[2])
    check_fits(recorded_bytes(pipe.dit, x0.shape[0], tokens, source.context.shape[1]),
               f"sharing the attention of {x0.shape[0]} clip(s) of {tokens} tokens",
               "edit fewer, shorter or smaller clips at a time", device)  # fmt: skip
    share = AttentionShare(pipe.dit)

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        level = float(t.mean())
        keep_self, keep_cross = level >= sharing.self_until, level >= sharing.cross_until
        if keep_self or keep_cross:
            with share.recording():
                pipe.denoiser(path[time_key(t[0])], t, source)
        with share.replaying(keep_self, alignment if keep_cross else None):
            v = pipe.denoiser(x, t, target)
        if text_scale == 1.0:
            return v
        with share.replaying(keep_self):
            v_null = pipe.denoiser(x, t, null)
        return v_null + text_scale * (v - v_null)

    return velocity


@torch.no_grad()
def sdedit_latents(
    pipe: Pipeline,
    z: torch.Tensor,
    prompts: Sequence[str],
    cfg: GenerateConfig,
    strength: float,
    negative: str = "",
    source_prompts: Sequence[str] | None = None,
    sharing: Sharing | None = SHARING,
) -> torch.Tensor:
    """Normalised latents z (B, C, T', H', W') renoised to `strength` and denoised under `prompts`;
    with `source_prompts` (what the clip shows) and `sharing`, the clip's attention is shared
    as in `edit_latents`, its own state at each level being z noised there with the same noise."""
    sched = partial_schedule(make_schedule(pipe, z.shape, cfg.steps, cfg.lag), strength)
    noise = initial_noise(z.shape, cfg.seed, z.device)

    def noised(row: torch.Tensor) -> torch.Tensor:
        return add_noise(z, noise, row[None].expand(z.shape[0], -1).to(z.device))

    x = noised(sched[0])
    null, target = (c.to(z.device) for c in prepare_text(pipe.text, prompts, negative))
    if sharing is None or source_prompts is None:
        return denoise(pipe.denoiser, x, sched, [null, target], [cfg.text_scale], cfg.solver)
    path = {time_key(row): noised(row) for row in sched}
    velocity = shared_velocity(pipe, path, source_prompts, prompts, null, target, cfg.text_scale, sharing)
    return finite(sample(velocity, x, sched, cfg.solver))


def video_to_video(
    pipe: Pipeline,
    video_bcthw: torch.Tensor,
    prompts: Sequence[str],
    cfg: GenerateConfig,
    strength: float,
    negative: str = "",
    source_prompts: Sequence[str] | None = None,
    sharing: Sharing | None = SHARING,
) -> torch.Tensor:
    """The clip redrawn under `prompts`, keeping its structure more the lower `strength` is;
    given `source_prompts` (what the clip shows), also through its shared attention."""
    z = encode(pipe, video_bcthw)
    out = sdedit_latents(pipe, z, prompts, cfg, strength, negative, source_prompts, sharing)
    return decode(pipe, out, video_bcthw.shape[2])


@torch.no_grad()
def invert(
    pipe: Pipeline,
    z: torch.Tensor,
    prompts: Sequence[str],
    steps: int,
    text_scale: float = 1.0,
    solver: str = "euler",
) -> torch.Tensor:
    """The noise (t = 1) from which the flow under `prompts` leads to latents z (t = 0)."""
    sched = make_schedule(pipe, z.shape, steps).flip(0)  # 0 -> 1
    return invert_path(pipe, z, prompts, sched, text_scale, solver)[time_key(sched[-1])]


@torch.no_grad()
def invert_path(
    pipe: Pipeline,
    z: torch.Tensor,
    prompts: Sequence[str],
    sched_up: torch.Tensor,
    text_scale: float = 1.0,
    solver: str = "euler",
) -> dict[tuple[float, ...], torch.Tensor]:
    """The states of the backward integration from z along `sched_up` (rising noise levels),
    by `time_key` of their schedule row: the clip's own path, which sharing reads back."""
    levels = [level.to(z.device) for level in stack_levels([prepare_text(pipe.text, prompts)])]
    velocity = guided(pipe.denoiser, levels, [text_scale])
    path = {}

    def recorded(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        path[time_key(t[0])] = x  # Heun's predictor is overwritten by the corrected state
        return velocity(x, t)

    path[time_key(sched_up[-1])] = sample(recorded, z, sched_up, solver)
    return path


@torch.no_grad()
def edit_latents(
    pipe: Pipeline,
    z: torch.Tensor,
    source_prompts: Sequence[str],
    target_prompts: Sequence[str],
    cfg: GenerateConfig,
    inversion_scale: float = 1.0,
    sharing: Sharing | None = SHARING,
    strength: float = EDIT_STRENGTH,
) -> torch.Tensor:
    """Normalised latents z inverted under `source_prompts` up to noise level `strength` (1:
    pure noise), then regenerated under `target_prompts`, sharing the clip's attention as
    `sharing` says (None: plain regeneration)."""
    check_pairs(z.shape[0], source_prompts, target_prompts)
    sched = partial_schedule(make_schedule(pipe, z.shape, cfg.steps, cfg.lag), strength)
    path = invert_path(pipe, z, source_prompts, sched.flip(0), inversion_scale, cfg.solver)
    noise = path[time_key(sched[0])]
    null, target = (c.to(z.device) for c in prepare_text(pipe.text, target_prompts))
    if sharing is None:
        return denoise(pipe.denoiser, noise, sched, [null, target], [cfg.text_scale], cfg.solver)
    velocity = shared_velocity(
        pipe, path, source_prompts, target_prompts, null, target, cfg.text_scale, sharing
    )
    return finite(sample(velocity, noise, sched, cfg.solver))


def edit(
    pipe: Pipeline,
    video_bcthw: torch.Tensor,
    source_prompts: Sequence[str],
    target_prompts: Sequence[str],
    cfg: GenerateConfig,
    inversion_scale: float = 1.0,
    sharing: Sharing | None = SHARING,
    strength: float = EDIT_STRENGTH,
) -> torch.Tensor:
    """The clip (B, 3, T, H, W) in [-1, 1] edited from `source_prompts` to `target_prompts`
    (`edit_latents`), as pixels."""
    z = encode(pipe, video_bcthw)
    out = edit_latents(pipe, z, source_prompts, target_prompts, cfg, inversion_scale, sharing, strength)
    return decode(pipe, out, video_bcthw.shape[2])
