"""Training world models on recorded episodes, with the common trainer.

A training item is one transition with its context: the N frames up to step i, the actions
taken on them, the frame after (i + 1), and the step's reward and end. Windows that reach
back before an episode's start repeat its first frame (with action 0), as at a reset.

The flow task (per step):
1. Noise the next frame to a level t ~ U(0, 1) (uniform: with 1-2 sampling steps the model
   is used at t = 1 and t = 0.5, which the logit-normal draw of the DiT would rarely visit).
2. Noise the context frames to a level drawn from U(0, context_noise) and tell the model the
   level (GameNGen's augmentation against drift).
3. Loss = MSE of the predicted clean frame (the velocity's MSE weighted by t^2: every noise
   level counts the same in pixels, which is what a frame's PSNR measures) + `head_weight` x (the reward-class cross-entropy, its rare
   nonzero classes weighted up, + the end logit's binary cross-entropy).

The ConvLSTM baseline trains on the same items with the squared error of its frame.

The heads can also be trained alone on a trained world model (`model = "heads"`, `init`):
the denoiser frozen, batches in which a share `event_share` of the items are transitions with
a reward or an episode end. Those are 0.2-1% of a game's steps, so in a uniform batch of 32
the heads saw one about every third step and learned to predict none (docs/RESULTS.md,
session 16); mixing them in by sampling gives every batch its positives without the loss
weights that made the joint training unstable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from filmstrip.config import require
from filmstrip.diffusion.flow import add_noise
from filmstrip.errors import InputError
from filmstrip.io import write_video
from filmstrip.io.layout import from_uint8
from filmstrip.models.unet import UNetConfig
from filmstrip.train.recipes import Log, fit_recipe
from filmstrip.train.trainer import TrainConfig
from filmstrip.world.convlstm import ConvLSTMConfig, ConvLSTMPredictor
from filmstrip.world.episodes import Episode, load_episode
from filmstrip.world.model import WorldModel, WorldModelConfig, load_world_model
from filmstrip.world.rollout import SampleConfig, convlstm_predictor, flow_predictor, noised_context, rollout


class Transitions(Dataset):
    """Every step of every episode under a folder, as (context, action, next frame, reward, end)."""

    def __init__(self, folder: Path | str, context: int):
        paths = sorted(Path(folder).rglob("*.npz"))
        if not paths:
            raise InputError(f"{folder}: no episodes (NAME.npz); record some with `filmstrip world record`")
        self.episodes: list[Episode] = [load_episode(p) for p in paths]
        sizes = {e.frames.shape[1:] for e in self.episodes}
        if len(sizes) > 1 or len({e.num_actions for e in self.episodes}) > 1:
            raise InputError(f"{folder}: episodes of several frame sizes or action sets: {sorted(sizes)}")
        self.context = context
        self.num_actions = self.episodes[0].num_actions
        self.size = self.episodes[0].frames.shape[1]
        self.fps = self.episodes[0].fps
        # Flat index: item j is step `steps[j]` of episode `which[j]`.
        self.which = np.concatenate([np.full(len(e), k) for k, e in enumerate(self.episodes)])
        self.steps = np.concatenate([np.arange(len(e)) for e in self.episodes])

    def __len__(self) -> int:
        return len(self.which)

    def window(self, episode: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Context frames uint8 (N, H, W, 3) up to `step` and the actions taken on them (N,)."""
        e = self.episodes[episode]
        idx = np.arange(step - self.context + 1, step + 1)
        frames = e.frames[np.maximum(idx, 0)]
        actions = np.where(idx >= 0, e.actions[np.maximum(idx, 0)], 0)
        return frames, actions

    def windows(self, picks: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """The windows of several (episode, step) pairs, stacked: uint8 (B, N, H, W, 3), (B, N)."""
        wins = [self.window(k, i) for k, i in picks]
        return torch.from_numpy(np.stack([w[0] for w in wins])), torch.from_numpy(
            np.stack([w[1] for w in wins])
        )

    def batch(self, indices) -> dict:
        """Items `indices` stacked into one batch, as the trainer's loader would."""
        items = [self[j] for j in indices]
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}

    def __getitem__(self, j: int) -> dict:
        k, i = int(self.which[j]), int(self.steps[j])
        e = self.episodes[k]
        frames, actions = self.window(k, i)
        return {
            "context": torch.from_numpy(frames),
            "actions": torch.from_numpy(actions),
            "next": torch.from_numpy(e.frames[i + 1]),
            "reward": torch.tensor(int(np.sign(e.rewards[i])) + 1),  # class 0, 1, 2: negative, zero, positive
            "end": torch.tensor(float(e.ends[i])),
        }


class EventMix(Dataset):
    """`data` with a share of its items replaced by transitions that carry a reward or an end:
    item j is an event when j falls in the first `share` of its block of 100, so every epoch
    (and any shuffled batch, on average) holds that share, and the mapping is fixed, which an
    exact resume needs."""

    def __init__(self, data: Transitions, share: float):
        if not 0 < share < 1:
            raise InputError(f"event_share must lie in (0, 1), got {share}")
        rewards = np.concatenate([e.rewards for e in data.episodes])
        ends = np.concatenate([e.ends for e in data.episodes])
        self.events = np.nonzero((rewards != 0) | ends)[0]
        if not len(self.events):
            raise InputError(
                "no transition in the data has a reward or an episode end: nothing for the heads"
            )
        self.data, self.share = data, share

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, j: int) -> dict:
        if j % 100 < round(100 * self.share):
            return self.data[int(self.events[(j // 100 * 7919 + j % 100) % len(self.events)])]
        return self.data[j]


def to_bnchw(frames_bnhwc: torch.Tensor) -> torch.Tensor:
    return from_uint8(frames_bnhwc).movedim(-1, -3)


@dataclass(frozen=True)
class WorldTaskConfig:
    context_noise: float = 0.3  # context noise levels drawn from U(0, this) in training
    head_weight: float = 0.1
    rare_weight: float = 10.0  # cross-entropy weight of the nonzero reward classes and of an end
    event_share: float = 0.0  # share of each batch drawn from transitions with a reward or end
    preview_steps: int = 64

    def __post_init__(self):
        require(
            self,
            at_least={"context_noise": 0, "head_weight": 0, "event_share": 0, "preview_steps": 1},
            above={"rare_weight": 0},
        )
        if not (self.context_noise < 1 and self.event_share < 1):
            raise InputError(
                f"context_noise and event_share are below 1, got {self.context_noise}, {self.event_share}"
            )


class _Preview:
    """Rollouts from held-out starts with the recorded actions, beside the truth."""

    def __init__(self, held_out: Transitions, count: int = 4, horizon: int = 64):
        self.held_out, self.horizon = held_out, horizon
        picks = [(k, 8) for k in range(min(count, len(held_out.episodes)))]
        frames, self.actions = held_out.windows(picks)
        self.frames = to_bnchw(frames)
        ep = held_out.episodes
        self.future = torch.from_numpy(np.stack([ep[k].actions[i : i + horizon] for k, i in picks]))
        self.truth = to_bnchw(
            torch.from_numpy(np.stack([ep[k].frames[i + 1 : i + 1 + horizon] for k, i in picks]))
        )
        self.fps = held_out.fps

    def write(self, predict, path: Path) -> None:
        made = rollout(predict, self.frames, self.actions, self.future)  # (B, H, 3, h, w)
        grid = torch.cat([torch.cat(list(self.truth), dim=-1), torch.cat(list(made), dim=-1)], dim=-2)
        write_video(path, grid.transpose(0, 1), fps=self.fps)


class WorldTask:
    kind = "world"

    def __init__(
        self,
        cfg: WorldModelConfig,
        task: WorldTaskConfig,
        preview: _Preview | None = None,
        heads_only: bool = False,
    ):
        """`heads_only`: train the reward and end heads alone; the rest stays as it is."""
        self.cfg, self.task_cfg, self.preview, self.heads_only = cfg, task, preview, heads_only
        self.model = WorldModel(cfg)
        if heads_only:
            self.model.requires_grad_(False)
            self.model.heads.requires_grad_(True)

    def auxiliary(self) -> dict:
        return {}

    def loss(self, model: nn.Module, batch: dict, step: int, generator: torch.Generator, aux) -> tuple:
        device = next(self.model.parameters()).device
        context = to_bnchw(batch["context"].to(device))  # (B, N, 3, H, W)
        x0 = to_bnchw(batch["next"].to(device))[:, :, None]  # (B, 3, 1, H, W)
        actions = batch["actions"].to(device)
        if self.heads_only:
            reward_logits, end_logit = getattr(model, "module", model).heads(
                context[:, -1], x0[:, :, 0], actions[:, -1]
            )
            reward_loss, end_loss = self._head_losses(reward_logits, end_logit, batch, device)
            loss = reward_loss + end_loss
            logs = {"loss": loss, "reward": reward_loss, "end": end_loss}
            return loss, {k: float(v.detach()) for k, v in logs.items()}
        b = actions.shape[0]
        t = torch.rand((b, 1), generator=generator, device=device)
        noise = torch.randn(x0.shape, generator=generator, device=device)
        level = torch.rand(b, generator=generator, device=device) * self.task_cfg.context_noise
        noisy_ctx = noised_context(context, level, generator)
        # The heads see the clean context: at play time they judge the frames the player saw.
        x0_pred, reward_logits, end_logit = model(
            add_noise(x0, noise, t)[:, :, 0], t[:, 0], noisy_ctx, actions, level, x0[:, :, 0]
        )
        flow = (x0_pred.float() - x0[:, :, 0]).square().mean()
        reward_loss, end_loss = self._head_losses(reward_logits, end_logit, batch, device)
        loss = flow + self.task_cfg.head_weight * (reward_loss + end_loss)
        logs = {"loss": loss, "flow": flow, "reward": reward_loss, "end": end_loss}
        return loss, {k: float(v.detach()) for k, v in logs.items()}

    def _head_losses(
        self, reward_logits, end_logit, batch: dict, device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.task_cfg.rare_weight
        reward_loss = F.cross_entropy(
            reward_logits, batch["reward"].to(device), weight=torch.tensor([w, 1.0, w], device=device)
        )
        end_loss = F.binary_cross_entropy_with_logits(
            end_logit, batch["end"].to(device), pos_weight=torch.tensor(w, device=device)
        )
        return reward_loss, end_loss

    def sample(self, model: nn.Module, out_dir: Path, step: int) -> None:
        if self.preview is not None:
            model.eval()
            self.preview.write(flow_predictor(model, SampleConfig()), out_dir / f"step_{step:06d}.mp4")

    def export(self, model: nn.Module) -> tuple[dict, dict]:
        return asdict(self.cfg), {"task": asdict(self.task_cfg)}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_tensors(self, state: dict[str, torch.Tensor]) -> None:
        pass


class ConvLSTMTask(WorldTask):
    kind = "world-convlstm"

    def __init__(self, cfg: ConvLSTMConfig, preview: _Preview | None = None):
        self.cfg, self.preview = cfg, preview
        self.model = ConvLSTMPredictor(cfg)

    def loss(self, model: nn.Module, batch: dict, step: int, generator: torch.Generator, aux) -> tuple:
        device = next(self.model.parameters()).device
        made = model(to_bnchw(batch["context"].to(device)), batch["actions"].to(device))
        loss = (made.float() - to_bnchw(batch["next"].to(device))).square().mean()
        return loss, {"loss": float(loss.detach())}

    def sample(self, model: nn.Module, out_dir: Path, step: int) -> None:
        if self.preview is not None:
            self.preview.write(convlstm_predictor(model.eval()), out_dir / f"step_{step:06d}.mp4")

    def export(self, model: nn.Module) -> tuple[dict, dict]:
        return asdict(self.cfg), {}


@dataclass(frozen=True)
class WorldRecipe:
    run: str = ""
    data: str = ""  # a folder of episodes (world record / world import)
    held_out: str = ""  # episodes for the preview rollouts and the shipped start contexts
    # flow: the world model; convlstm: the baseline; latent-actions: Genie's action model;
    # heads: the reward and end heads of the world model `init`, trained alone
    model: str = "flow"
    init: str | None = None  # a trained world model to start from (folder or bundled name)
    context: int = 4
    unet: UNetConfig = field(default_factory=UNetConfig)  # in_channels: from the context
    task: WorldTaskConfig = field(default_factory=WorldTaskConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=6000, batch_size=32, lr=3e-4, warmup=200, num_workers=1, sample_every=1000, ema_decay=0.999
        )
    )

    def __post_init__(self):
        if self.model not in ("flow", "convlstm", "latent-actions", "heads"):
            raise InputError(f"model must be flow, convlstm, latent-actions or heads, got {self.model!r}")
        if self.init and self.model not in ("flow", "heads"):
            raise InputError(f"init continues a world model; a {self.model} model starts from scratch")
        if self.model == "heads" and not self.init:
            raise InputError("model = heads trains the heads of a trained world model: give it with init")


def train_world(recipe: WorldRecipe, log: Log = print) -> Path:
    """Train a world model (or the ConvLSTM baseline) on recorded episodes; returns RUN/model."""
    if not recipe.run or not recipe.data:
        raise InputError("a world-model run needs a run folder and a data folder of episodes")
    data = Transitions(recipe.data, recipe.context)
    held_out = Transitions(recipe.held_out, recipe.context) if recipe.held_out else data
    preview = _Preview(held_out, horizon=recipe.task.preview_steps)
    game = recipe.data.rstrip("/").split("/")[-1]
    torch.manual_seed(recipe.train.seed)
    if recipe.model == "convlstm":
        task = ConvLSTMTask(ConvLSTMConfig(data.num_actions, data.size, recipe.context, game=game), preview)
    elif recipe.model == "latent-actions":
        from filmstrip.world.latent_actions import LatentActionConfig, LatentActionTask

        levels = LatentActionConfig().levels
        unet = replace(recipe.unet, in_channels=3 * recipe.context + len(levels), out_channels=3)
        task = LatentActionTask(
            LatentActionConfig(size=data.size, context=recipe.context, levels=levels, unet=unet)
        )
    elif recipe.init:
        init = load_world_model(recipe.init)
        if (init.cfg.num_actions, init.cfg.size, init.cfg.context) != (
            data.num_actions,
            data.size,
            recipe.context,
        ):
            raise InputError(
                f"{recipe.init}: a world model of {init.cfg.num_actions} actions, {init.cfg.size} px and "
                f"{init.cfg.context} context frames; the data and recipe give {data.num_actions}, {data.size} "
                f"and {recipe.context}"
            )
        task = WorldTask(init.cfg, recipe.task, preview, heads_only=recipe.model == "heads")
        task.model.load_state_dict(init.state_dict())
    else:
        cfg = WorldModelConfig(
            num_actions=data.num_actions,
            size=data.size,
            context=recipe.context,
            unet=replace(recipe.unet, in_channels=3 * (recipe.context + 1), out_channels=3),
            game=game,
            fps=data.fps,
        )
        task = WorldTask(cfg, recipe.task, preview)
        frames, actions = start_contexts(held_out, cfg.starts)
        task.model.start_frames.copy_(frames)
        task.model.start_actions.copy_(actions)
    detail = f"{len(data)} transitions from {len(data.episodes)} episodes, {data.num_actions} actions"
    if recipe.task.event_share:
        data = EventMix(data, recipe.task.event_share)
        detail += f", {100 * recipe.task.event_share:.0f}% of each batch from the {len(data.events)} with a reward or end"
    return fit_recipe(recipe, task, data, None, log, f"world model ({recipe.model})", detail)


def start_contexts(data: Transitions, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` real context windows spread over the episodes, for resets: uint8 (S, N, H, W, 3), (S, N)."""
    # A start is a window of real frames, so only episodes at least a context long give one.
    usable = np.flatnonzero([len(data.episodes[k]) >= data.context for k in data.which])
    if not len(usable):
        longest = max(len(e) for e in data.episodes)
        raise InputError(
            f"the episodes for start contexts are at most {longest} steps long, shorter than the "
            f"context ({data.context} frames): record longer episodes or lower --context"
        )
    picks = usable[np.linspace(0, len(usable) - 1, count).astype(int)]
    return data.windows([(int(data.which[j]), max(int(data.steps[j]), data.context - 1)) for j in picks])
