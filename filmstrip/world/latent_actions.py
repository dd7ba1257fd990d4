"""Latent actions learned from unlabeled video (Genie's latent action model, small).

Video on the internet has no action labels. Genie's answer: an encoder looks at the context
and the frame that followed and must squeeze "what happened" through a tiny discrete
bottleneck; a decoder must rebuild the next frame from the context and that code alone.
What the context cannot predict, the player's choice, is what the code learns to carry.

    encoder: [context | next | next - last] -> D numbers -> batch norm -> FSQ (2 x 2 x 2 = 8 codes)
    decoder: U-Net([context | code as D constant planes], cond = MLP(code)) -> next frame
             (as a change to the last one)

Two choices keep the bottleneck alive (RESULTS.md, sessions 21-22). Game frames are mostly
still, so an unnormalised encoder starts with outputs that barely differ between inputs and
training shrinks them further, to one code for everything (perplexity 1.0): the batch norm
holds every channel at zero mean and unit spread, so the codes stay in use until they come
to mean something. And the code enters the decoder as input planes as well as through its
AdaGN, whose zero-initialised scales pass it no gradient at the start. Batch statistics
drift with the weights, so `export` recomputes the norm's statistics for the exported (EMA)
weights on recent training batches before they are saved.

Then every transition of the unlabeled episodes gets its code (`label_folder`) and the usual
world model (model.py) trains on the codes as its actions. `best_mapping` finds the
one-to-one assignment of true actions to codes that agrees most often (exhaustive: the
action sets are small); `driving_map` sends each true action to the code it most often
gets, which is how a keyboard drives the latent-action world model (several keys with one
effect, as Pong's FIRE variants, share a code).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from filmstrip.checkpoint import build_with_weights, load_model, parse_config, resolve
from filmstrip.errors import InputError
from filmstrip.models.fsq import FSQ, codebook_usage
from filmstrip.models.unet import UNet, UNetConfig
from filmstrip.world.episodes import Episode, save_episode
from filmstrip.world.train import Transitions, to_bnchw


@dataclass(frozen=True)
class LatentActionConfig:
    size: int = 64
    context: int = 4
    levels: tuple[int, ...] = (2, 2, 2)  # FSQ levels: their product is the number of latent actions
    width: int = 32
    unet: UNetConfig = field(default_factory=lambda: UNetConfig(in_channels=15, channels=(32, 64), blocks=1))

    def __post_init__(self):
        planes = 3 * self.context + len(self.levels)
        if self.unet.in_channels != planes or self.unet.out_channels != 3:
            raise InputError(
                f"the decoder U-Net takes 3 x context + {len(self.levels)} code planes = {planes} channels "
                "and gives 3"
            )


class LatentActionModel(nn.Module):
    kind = "world-latent-actions"

    def __init__(self, cfg: LatentActionConfig):
        super().__init__()
        self.cfg = cfg
        layers, c = [], 3 * (cfg.context + 2)
        for _ in range(4):
            layers += [nn.Conv2d(c, cfg.width, 3, stride=2, padding=1), nn.SiLU()]
            c = cfg.width
        self.encoder = nn.Sequential(
            *layers,
            nn.Flatten(),
            nn.Linear(cfg.width * (cfg.size // 16) ** 2, len(cfg.levels)),
            nn.BatchNorm1d(len(cfg.levels), affine=False),
        )
        self.fsq = FSQ(cfg.levels)
        self.code_embed = nn.Sequential(nn.Linear(len(cfg.levels), cfg.unet.cond_dim), nn.SiLU())
        self.decoder = UNet(cfg.unet)

    @property
    def num_actions(self) -> int:
        return self.fsq.codebook_size

    def encoder_input(self, context_bnchw: torch.Tensor, next_bchw: torch.Tensor) -> torch.Tensor:
        """The context, the next frame and their change, stacked as channels."""
        context = rearrange(context_bnchw, "b n c h w -> b (n c) h w")
        return torch.cat([context, next_bchw, next_bchw - context_bnchw[:, -1]], dim=1)

    def encode(self, context_bnchw: torch.Tensor, next_bchw: torch.Tensor) -> torch.Tensor:
        """The (unrounded) latent action of each transition: (B, D)."""
        return self.encoder(self.encoder_input(context_bnchw, next_bchw))

    def codes(self, context_bnchw: torch.Tensor, next_bchw: torch.Tensor) -> torch.Tensor:
        """Latent action ids (B,) in [0, num_actions)."""
        return self.fsq.codes(self.encode(context_bnchw, next_bchw).float())

    def decode(self, context_bnchw: torch.Tensor, action_bd: torch.Tensor) -> torch.Tensor:
        x = rearrange(context_bnchw, "b n c h w -> b (n c) h w")
        planes = action_bd[:, :, None, None].expand(-1, -1, *x.shape[-2:]).to(x.dtype)
        return context_bnchw[:, -1] + self.decoder(torch.cat([x, planes], 1), self.code_embed(action_bd))

    @torch.no_grad()
    def calibrate(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Recompute the bottleneck norm's statistics for the current weights: the average over
        `batches` of (context, next) pairs, as inference will use them."""
        norm = self.encoder[-1]
        was_training, momentum = self.training, norm.momentum
        norm.reset_running_stats()
        norm.momentum = None  # a plain cumulative average
        self.train()
        for context, nxt in batches:
            self.encode(context, nxt)
        norm.momentum = momentum
        self.train(was_training)

    def forward(self, context_bnchw: torch.Tensor, next_bchw: torch.Tensor) -> torch.Tensor:
        """The next frame rebuilt through the quantised latent action: (B, 3, H, W)."""
        return self.decode(context_bnchw, self.fsq(self.encode(context_bnchw, next_bchw)))


class LatentActionTask:
    """Trains the latent action model with the common trainer: MSE of the rebuilt next frame."""

    kind = LatentActionModel.kind

    recent_batches = 8  # what `export` recalibrates the bottleneck norm on

    def __init__(self, cfg: LatentActionConfig):
        self.cfg = cfg
        self.model = LatentActionModel(cfg)
        self.recent: list[tuple[torch.Tensor, torch.Tensor]] = []

    def auxiliary(self) -> dict:
        return {}

    def loss(self, model: nn.Module, batch: dict, step: int, generator: torch.Generator, aux) -> tuple:
        device = next(self.model.parameters()).device
        context = to_bnchw(batch["context"].to(device))
        target = to_bnchw(batch["next"].to(device))
        self.recent = [*self.recent[1 - self.recent_batches :], (batch["context"], batch["next"])]
        loss = F.mse_loss(model(context, target).float(), target)
        with torch.no_grad():
            used = codebook_usage(self.model.codes(context, target), self.model.num_actions)
        return loss, {"loss": float(loss.detach()), "perplexity": used["perplexity"]}

    def sample(self, model: nn.Module, out_dir: Path, step: int) -> None:
        pass

    def export(self, model: nn.Module) -> tuple[dict, dict]:
        device = next(model.parameters()).device
        model.calibrate([(to_bnchw(c.to(device)), to_bnchw(n.to(device))) for c, n in self.recent])
        return asdict(self.cfg), {}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_tensors(self, state: dict[str, torch.Tensor]) -> None:
        pass


def load_latent_actions(directory: str | Path) -> LatentActionModel:
    path = resolve(directory, "world_pong")
    config, state, _ = load_model(path, LatentActionModel.kind)
    cfg = parse_config(path, LatentActionConfig, config)
    return build_with_weights(path, lambda: LatentActionModel(cfg), state).eval()


@torch.no_grad()
def label(model: LatentActionModel, data: Transitions, batch: int = 256) -> np.ndarray:
    """The latent action id of every transition of `data`, in its order: int64 (len(data),)."""
    out = []
    for i in range(0, len(data), batch):
        b = data.batch(range(i, min(i + batch, len(data))))
        out.append(model.codes(to_bnchw(b["context"]), to_bnchw(b["next"])).numpy())
    return np.concatenate(out)


def save_labelled(data: Transitions, codes: np.ndarray, num_actions: int, out: Path | str) -> Path:
    """Copies of `data`'s episodes with their actions replaced by `codes` (one per transition,
    in `data`'s order, as `label` gives them)."""
    out = Path(out)
    for k, e in enumerate(data.episodes):
        save_episode(
            out / f"episode_{k:04d}",
            Episode(e.frames, codes[data.which == k], e.rewards, e.ends, num_actions, e.fps),
            video=False,
        )
    return out


def label_folder(model: LatentActionModel, src: Path | str, out: Path | str) -> Path:
    """Copies of the episodes under `src` with their actions replaced by latent action ids."""
    data = Transitions(src, model.cfg.context)
    return save_labelled(data, label(model, data), model.num_actions, out)


def best_mapping(
    true: np.ndarray, latent: np.ndarray, num_true: int, num_latent: int
) -> tuple[dict[int, int], float]:
    """The one-to-one map from true action ids to latent ids that agrees on the most
    transitions, and the share it agrees on. Exhaustive over assignments (small action sets)."""
    if num_true > num_latent:
        raise InputError(f"{num_true} true actions cannot map one-to-one onto {num_latent} latent ones")
    counts = np.zeros((num_true, num_latent), np.int64)
    np.add.at(counts, (true, latent), 1)
    best, best_hits = None, -1
    for perm in itertools.permutations(range(num_latent), num_true):
        hits = int(counts[np.arange(num_true), perm].sum())
        if hits > best_hits:
            best, best_hits = perm, hits
    return {a: int(best[a]) for a in range(num_true)}, best_hits / max(len(true), 1)


def driving_map(true: np.ndarray, latent: np.ndarray, num_true: int, num_latent: int) -> list[int]:
    """For each true action, the latent action it most often gets: how a keyboard drives a
    world model trained on latent actions. Many-to-one on purpose: keys with one effect (Pong's
    FIRE variants) share a code. An action never seen maps to the most common code."""
    counts = np.zeros((num_true, num_latent), np.int64)
    np.add.at(counts, (true, latent), 1)
    overall = int(np.bincount(latent, minlength=num_latent).argmax()) if len(latent) else 0
    return [int(row.argmax()) if row.sum() else overall for row in counts]


def purity(groups: np.ndarray, latent: np.ndarray, num_latent: int) -> float:
    """The share of transitions whose group (a true action, or a set of actions with one
    effect) is the most common one among the transitions given the same code: how well the
    codes predict the group when each code may stand for one group only."""
    if not len(latent):
        return math.nan
    counts = np.zeros((num_latent, int(groups.max()) + 1), np.int64)
    np.add.at(counts, (latent, groups), 1)
    return float(counts.max(1).sum() / len(latent))
