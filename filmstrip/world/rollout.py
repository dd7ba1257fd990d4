"""Driving a world model: next-frame prediction in a few flow steps, and rollouts with a
bounded context.

Every predictor here is a function `(context (B, N, 3, H, W) in [-1, 1], actions (B, N)) ->
next frame (B, 3, H, W)`, so the flow model, the ConvLSTM and copy-the-last-frame are driven,
evaluated and played by the same code. `Rollout` keeps exactly N frames and N actions and
shifts them by one each step: memory and cost per frame are the same at step 10 and at step
10,000.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from filmstrip.diffusion.flow import add_noise
from filmstrip.diffusion.sampling import sample, schedule
from filmstrip.errors import InputError
from filmstrip.world.convlstm import ConvLSTMPredictor
from filmstrip.world.model import WorldModel

Predict = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SampleConfig:
    steps: int = 2  # flow steps per frame (1-4: game frames are nearly deterministic given the actions)
    context_noise: float = 0.0  # noise put on the context at play time (the model is told the level)
    bf16: bool = False

    def __post_init__(self):
        if not 1 <= self.steps <= 64:
            raise InputError(f"steps must be 1..64, got {self.steps}")
        if not 0 <= self.context_noise < 1:
            raise InputError(f"context_noise must be in [0, 1), got {self.context_noise}")


def noised_context(
    context_bnchw: torch.Tensor, level_b: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Every context frame of sample b moved along the flow path to noise level `level[b]`."""
    noise = torch.randn(context_bnchw.shape, generator=generator, device=context_bnchw.device)
    levels_bn = level_b[:, None].expand(-1, context_bnchw.shape[1])
    return add_noise(context_bnchw.transpose(1, 2), noise.transpose(1, 2), levels_bn).transpose(1, 2)


def flow_predictor(model: WorldModel, cfg: SampleConfig = SampleConfig(), seed: int = 0) -> Predict:
    """The world model as a predictor: the next frame from noise in `cfg.steps` Euler steps."""
    device = next(model.parameters()).device
    generator = torch.Generator(device).manual_seed(seed)
    sched = schedule(cfg.steps, 1).to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if cfg.bf16 else nullcontext()

    @torch.no_grad()
    def predict(context_bnchw: torch.Tensor, actions_bn: torch.Tensor) -> torch.Tensor:
        model.check(context_bnchw, actions_bn)
        given_on = context_bnchw.device  # the frame goes back there (a rollout kept on the CPU)
        context_bnchw, actions_bn = context_bnchw.to(device), actions_bn.to(device)
        b = context_bnchw.shape[0]
        level = torch.full((b,), cfg.context_noise, device=device)
        if cfg.context_noise > 0:
            context_bnchw = noised_context(context_bnchw, level, generator)
        x = torch.randn((b, 3, 1, *context_bnchw.shape[-2:]), generator=generator, device=device)

        def velocity(x_bcthw: torch.Tensor, t_bt: torch.Tensor) -> torch.Tensor:
            with autocast:
                x0 = model(x_bcthw[:, :, 0], t_bt[:, 0], context_bnchw, actions_bn, level)
            # The velocity of the straight path through x_t and x_0 (t > 0 at every step's start).
            return (x_bcthw - x0.float()[:, :, None]) / t_bt[:, None, :, None, None]

        return sample(velocity, x, sched)[:, :, 0].clamp(-1, 1).to(given_on)

    return predict


def convlstm_predictor(model: ConvLSTMPredictor) -> Predict:
    device = next(model.parameters()).device

    @torch.no_grad()
    def predict(context_bnchw: torch.Tensor, actions_bn: torch.Tensor) -> torch.Tensor:
        made = model(context_bnchw.to(device), actions_bn.to(device))
        return made.float().clamp(-1, 1).to(context_bnchw.device)

    return predict


def copy_last(context_bnchw: torch.Tensor, actions_bn: torch.Tensor) -> torch.Tensor:
    """The baseline every world model must beat: nothing moves."""
    return context_bnchw[:, -1]


class Rollout:
    """A bounded context of N frames and the actions taken on them, shifted one step at a time.

    `frames` (B, N, 3, H, W) in [-1, 1]; `actions` (B, N), where the last entry is a
    placeholder: the action taken on seeing the last frame is the one `step` receives."""

    def __init__(self, predict: Predict, frames_bnchw: torch.Tensor, actions_bn: torch.Tensor, heads=None):
        if frames_bnchw.shape[:2] != actions_bn.shape:
            raise InputError(
                f"{tuple(frames_bnchw.shape[:2])} context frames need as many actions, got {tuple(actions_bn.shape)}"
            )
        self.predict, self.heads = predict, heads
        # Where the heads read their inputs (the model's device; the rollout may stay on the CPU).
        self.heads_on = next(heads.parameters()).device if heads is not None else None
        self.frames = frames_bnchw.clone()
        self.actions = actions_bn.clone()

    @torch.no_grad()
    def step(self, action_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Take `action` (B,): the next frame (B, 3, H, W), reward (B,) and episode end (B,),
        the last two from the heads (zeros and False without them)."""
        action_b = action_b.to(self.actions.device)
        self.actions[:, -1] = action_b
        frame = self.predict(self.frames, self.actions)
        b = frame.shape[0]
        reward, end = torch.zeros(b), torch.zeros(b, dtype=torch.bool)
        if self.heads is not None:
            on = self.heads_on
            reward_logits, end_logit = self.heads(self.frames[:, -1].to(on), frame.to(on), action_b.to(on))
            reward, end = (reward_logits.argmax(1) - 1).float().cpu(), (end_logit > 0).cpu()
        self.frames = torch.cat([self.frames[:, 1:], frame[:, None]], dim=1)
        self.actions = torch.cat([self.actions[:, 1:], torch.zeros_like(self.actions[:, :1])], dim=1)
        return frame, reward, end


def rollout(
    predict: Predict, frames_bnchw: torch.Tensor, actions_bn: torch.Tensor, future_bh: torch.Tensor
) -> torch.Tensor:
    """Frames (B, H, 3, height, width) made by taking the actions `future` (B, H) in turn."""
    state = Rollout(predict, frames_bnchw, actions_bn)
    return torch.stack([state.step(future_bh[:, k])[0] for k in range(future_bh.shape[1])], dim=1)
