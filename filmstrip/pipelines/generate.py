"""Text to video: encode the prompt -> denoise latents -> decode pixels.

    pipe = load_pipeline()                      # the bundled model, its VAE, the text encoder
    video = generate(pipe, ["a red circle moves to the right"], GenerateConfig(seed=0))

Every step is a function of the shared core (denoise.py); this body only chooses them.
Guidance runs the unconditional (or negative-prompt) and the conditional prediction as one
batch, and is skipped at scale 1. In a batch, prompt k uses seed + k.

Given frames (image to video, first + last frame, keyframes, a prefix to extend) are
conditions: `generate(pipe, prompts, cfg, conditions=[ImageCondition(image, 0)])`. With them,
guidance has two scales, image then text (InstructPix2Pix's order): levels (none, none),
(frames, none), (frames, text).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from filmstrip.errors import InputError
from filmstrip.models.conditioning import Conditioning
from filmstrip.pipelines.conditions import Condition, FramePlan, prepare_frames
from filmstrip.pipelines.denoise import (  # noqa: F401 (Pipeline and load_pipeline: this module's API)
    Pipeline,
    decode,
    denoise,
    initial_noise,
    latent_shape,
    load_pipeline,
    make_schedule,
    place_frames,
)
from filmstrip.pipelines.prepare import (
    Pair,
    check_prompts,
    everywhere,
    prepare_camera,
    prepare_control,
    prepare_motion,
    prepare_text,
    prepare_vector,
    stack_levels,
    warn_unknown_words,
    warn_untrained_shape,
)

KEYFRAME_IMAGE_SCALE = 6.0
# A prefix of several latent frames held in place (extension): image guidance 4 makes the
# join smoother (objects' speed across it within 20% of their speed before: 38% of them,
# against 26% at 1) at the same direction accuracy (73.1% vs 73.7%; docs/RESULTS.md,
# sessions 15 and 24).
PREFIX_IMAGE_SCALE = 4.0
# With structure maps (a ControlNet), text guidance 2.5 rather than 4: the prompt's push
# pulls objects off their masks. On 100 fresh scenes, mask IoU 0.827 against 0.788 (higher on
# 149 of 150 scenes) at the same colour, shape and count (99.7 / 97.8 / 99.0%) and
# direction 91.8% against 88.7% (docs/RESULTS.md, session 28). The CLI and `eval structure`
# use it when no --cfg is given; in Python, `GenerateConfig(text_scale=CONTROL_TEXT_SCALE)`.
CONTROL_TEXT_SCALE = 2.5


@dataclass(frozen=True)
class GenerateConfig:
    frames: int = 17
    height: int = 64
    width: int = 64
    steps: int = 20
    text_scale: float = 4.0
    # Image guidance, for image / keyframe / video conditions: pushes from "no frames given"
    # to "frames given" (1 = off: one pass fewer). None: KEYFRAME_IMAGE_SCALE when a frame is
    # appended as a keyframe, PREFIX_IMAGE_SCALE when a prefix of several latent frames is
    # held in place (extension), else 1 (a first frame held in place needs no push). Measured
    # on the bundled model: the last keyframe lands within 0.77 px on average (95th percentile
    # 1.68) at 6, 1.70 (4.78) at 1 (docs/RESULTS.md, session 15).
    image_scale: float | None = None
    solver: str = "euler"
    seed: int = 0
    # Pyramid schedule: how far (a share of the run) the last frame trails the first. 0: every
    # frame at one noise level. Only for models trained with per-frame noise levels. None: the
    # model's own default (denoise.default_lag: 1 for a causal model, else 0).
    lag: float | None = None
    # Motion strength in [0, 1] for a model trained with a motion condition (a share of
    # data/motion.FULL_SPEED), one for every prompt or a tuple of one per prompt; None: the
    # model's own choice, as trained without it.
    motion: float | tuple[float, ...] | None = None
    # Guidance from "no motion condition" to the strength asked for (1: none, one pass fewer).
    # At 5 the slowest level moves at 20% of the fastest's speed, at 1 at 45% (the prompt's
    # words pull every speed towards the training set's middle; docs/RESULTS.md, session 18).
    motion_scale: float = 5.0

    def __post_init__(self):
        for name in ("frames", "height", "width", "steps", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise InputError(f"{name} is a whole number, got {value!r}")
        for name in ("text_scale", "image_scale", "motion_scale"):
            if getattr(self, name) is not None and not math.isfinite(getattr(self, name)):
                raise InputError(f"the guidance scale must be a finite number, got {getattr(self, name)}")
        if not 0 <= self.seed < 2**32:
            raise InputError(f"the seed must be in [0, 2^32), got {self.seed}")
        if self.steps < 1:
            raise InputError(f"cannot sample in {self.steps} steps: use at least 1")
        if self.lag is not None and (not math.isfinite(self.lag) or self.lag < 0):
            raise InputError(f"the pyramid lag is a share of the run, at least 0; got {self.lag}")
        if self.motion is not None:
            if not isinstance(self.motion, int | float):  # a list from a caller: kept as a tuple
                object.__setattr__(self, "motion", tuple(float(m) for m in self.motion))
            levels = (self.motion,) if isinstance(self.motion, int | float) else self.motion
            if not levels or not all(math.isfinite(m) and 0 <= m <= 1 for m in levels):
                raise InputError(f"motion strength is in [0, 1] (0 still, 1 fastest), got {self.motion}")


def trained_shape(pipe: Pipeline) -> tuple[int, int, int]:
    """(frames, height, width): the clip shape the model trained on most, or GenerateConfig's
    defaults where its checkpoint does not say (the bundled models: 17 x 64 x 64)."""
    if pipe.trained_shapes:
        frames, height, width, _ = pipe.trained_shapes[0]
        return frames, height, width
    return GenerateConfig.frames, GenerateConfig.height, GenerateConfig.width


def asked_shape(
    pipe: Pipeline, frames: int | None = None, size: tuple[int, int] | None = None
) -> tuple[int, int, int]:
    """(frames, height, width): the frames and (height, width) asked for, and for what is not
    asked (None), the model's own `trained_shape`."""
    trained = trained_shape(pipe)
    return (trained[0] if frames is None else frames, *(size or trained[1:]))


def check_request(
    pipe: Pipeline, prompts: Sequence[str], cfg: GenerateConfig, batch: int | None = None
) -> None:
    """Refuse a request before any work: an empty prompt or a size the model cannot make; and
    say when a prompt holds words, or the video a size, the model never met in training.
    batch: how many of the prompts are made at once, what memory must hold (default: all)."""
    check_prompts(prompts)
    warn_unknown_words(pipe.trained_on, prompts)
    warn_untrained_shape(pipe.trained_shapes, cfg.frames, cfg.height, cfg.width)
    latent_shape(pipe, min(len(prompts), batch or len(prompts)), cfg.frames, cfg.height, cfg.width)
    if cfg.motion is not None and "motion" not in dict(pipe.dit.cfg.vectors):
        raise InputError(
            "this model was not trained with a motion condition; drop --motion or use one that was"
        )
    if isinstance(cfg.motion, tuple) and len(cfg.motion) != len(prompts):
        raise InputError(
            f"{len(cfg.motion)} motion strengths for {len(prompts)} prompts: give one, or one per prompt"
        )


def image_scale(cfg: GenerateConfig, plan: FramePlan) -> float:
    """The image guidance scale asked for, or the default for what the plan gives."""
    if cfg.image_scale is not None:
        return cfg.image_scale
    if plan.pair[1].keyframes is not None:
        return KEYFRAME_IMAGE_SCALE
    return PREFIX_IMAGE_SCALE if len(plan.in_place) > 1 else 1.0


@torch.no_grad()
def generate(
    pipe: Pipeline,
    prompts: Sequence[str],
    cfg: GenerateConfig,
    negative: str = "",
    conditions: Sequence[Condition] | Sequence[Sequence[Condition]] = (),
    progress: bool = False,
    control: torch.Tensor | None = None,
    camera=None,
) -> torch.Tensor:
    """Videos (B, 3, frames, height, width) in [-1, 1] for B prompts, each showing the frames
    that `conditions` give (pipelines/conditions.py) where they give them: one list for all
    prompts, or one list per prompt (the same frames, different images). control: structure
    maps (1 or B, C, frames, height, width) in [0, 1] for a DiT with a ControlNet
    (models/controlnet.ControlledDiT), followed best at text scale CONTROL_TEXT_SCALE.
    camera: a data/camera.CameraPath, one entry per frame, for a model trained with a camera
    condition."""
    check_request(pipe, prompts, cfg)
    shape = latent_shape(pipe, len(prompts), cfg.frames, cfg.height, cfg.width)
    x = initial_noise(shape, cfg.seed, pipe.device)
    sched = make_schedule(pipe, shape, cfg.steps, cfg.lag)
    text = prepare_text(pipe.text, prompts, negative)
    # Conditions given at every guidance level, and (pair, scale) pushes in guidance order.
    always = Conditioning()
    if control is not None:
        always = always.merge(
            prepare_control(control, len(prompts), cfg.frames, cfg.height, cfg.width, pipe.device)
        )
    if camera is not None:
        if "camera" not in dict(pipe.dit.cfg.vectors):
            raise InputError(
                "this model was not trained with a camera condition; drop --camera or use one that was"
            )
        always = always.merge(prepare_camera(camera, len(prompts), cfg.frames, shape[2], pipe.device))
    pushes: list[tuple[Pair, float]] = []
    if conditions:
        plan = prepare_frames(pipe, conditions, cfg.frames, x)
        x, sched = place_frames(x, sched, plan.in_place)
        pushes.append((plan.pair, image_scale(cfg, plan)))  # image first: from "none given"
    if cfg.motion is not None:
        motion = prepare_motion(cfg.motion, len(prompts), shape[2], pipe.device)
        if cfg.motion_scale == 1.0:
            always = always.merge(motion)
        else:
            pushes.append((prepare_vector("motion", motion.vectors["motion"]), cfg.motion_scale))
    pushes.append((everywhere(text, always), cfg.text_scale))
    levels = stack_levels([pair for pair, _ in pushes])
    z = denoise(pipe.denoiser, x, sched, levels, [scale for _, scale in pushes], cfg.solver, progress)
    return decode(pipe, z, cfg.frames)
