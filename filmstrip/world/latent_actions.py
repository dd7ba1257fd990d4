"""Latent actions learned from unlabeled video (Genie's latent action model, small).

Video on the internet has no action labels. Genie's answer: an encoder looks at the context
and the frame that followed and must squeeze "what happened" through a tiny discrete
bottleneck; a decoder must rebuild the next frame from the context and that code alone.
What the context cannot predict, the player's choice, is what the code learns to carry.

    encoder: [context frames | next frame] -> D numbers -> FSQ (levels, e.g. 2 x 2 x 2 = 8 codes)
    decoder: U-Net([context frames], cond = MLP(code)) -> next frame (as a change to the last one)

Then every transition of the unlabeled episodes gets its code (`label_folder`) and the usual
world model (model.py) trains on the codes as its actions. `best_mapping` finds the
one-to-one assignment of true actions to codes that agrees most often (exhaustive: the
action sets are small), which is how a person would learn to drive the latent-action model
with a keyboard.
"""

from __future__ import annotations

import itertools
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
    unet: UNetConfig = field(default_factory=lambda: UNetConfig(in_channels=12, channels=(32, 64), blocks=1))

    def __post_init__(self):
        if self.unet.in_channels != 3 * self.context or self.unet.out_channels != 3:
            raise InputError(f"the decoder U-Net takes 3 x context = {3 * self.context} channels and gives 3")


class LatentActionModel(nn.Module):
    kind = "world-latent-actions"

    def __init__(self, cfg: LatentActionConfig):
        super().__init__()
        self.cfg = cfg
        layers, c = [], 3 * (cfg.context + 1)
        for _ in range(4):
            layers += [nn.Conv2d(c, cfg.width, 3, stride=2, padding=1), nn.SiLU()]
            c = cfg.width
        self.encoder = nn.Sequential(
            *layers, nn.Flatten(), nn.Linear(cfg.width * (cfg.size // 16) ** 2, len(cfg.levels))
        )
        self.fsq = FSQ(cfg.levels)
        self.code_embed = nn.Sequential(nn.Linear(len(cfg.levels), cfg.unet.cond_dim), nn.SiLU())
        self.decoder = UNet(cfg.unet)

    @property
    def num_actions(self) -> int:
        return self.fsq.codebook_size

    def encode(self, context_bnchw: torch.Tensor, next_bchw: torch.Tensor) -> torch.Tensor:
        """The (unrounded) latent action of each transition: (B, D)."""
        x = torch.cat([rearrange(context_bnchw, "b n c h w -> b (n c) h w"), next_bchw], dim=1)
        return self.encoder(x)

    def codes(self, context_bnchw: torch.Tensor, next_bchw: torch.Tensor) -> torch.Tensor:
        """Latent action ids (B,) in [0, num_actions)."""
        return self.fsq.codes(self.encode(context_bnchw, next_bchw).float())

    def decode(self, context_bnchw: torch.Tensor, action_bd: torch.Tensor) -> torch.Tensor:
        x = rearrange(context_bnchw, "b n c h w -> b (n c) h w")
        return context_bnchw[:, -1] + self.decoder(x, self.code_embed(action_bd))

    def forward(self, context_bnchw: torch.Tensor, next_bchw: torch.Tensor) -> torch.Tensor:
        """The next frame rebuilt through the quantised latent action: (B, 3, H, W)."""
        return self.decode(context_bnchw, self.fsq(self.encode(context_bnchw, next_bchw)))


class LatentActionTask:
    """Trains the latent action model with the common trainer: MSE of the rebuilt next frame."""

    kind = LatentActionModel.kind

    def __init__(self, cfg: LatentActionConfig):
        self.cfg = cfg
        self.model = LatentActionModel(cfg)

    def auxiliary(self) -> dict:
        return {}

    def loss(self, model: nn.Module, batch: dict, step: int, generator: torch.Generator, aux) -> tuple:
        device = next(self.model.parameters()).device
        context = to_bnchw(batch["context"].to(device))
        target = to_bnchw(batch["next"].to(device))
        loss = F.mse_loss(model(context, target).float(), target)
        with torch.no_grad():
            used = codebook_usage(self.model.codes(context, target), self.model.num_actions)
        return loss, {"loss": float(loss.detach()), "perplexity": used["perplexity"]}

    def sample(self, model: nn.Module, out_dir: Path, step: int) -> None:
        pass

    def export(self, model: nn.Module) -> tuple[dict, dict]:
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


def label_folder(model: LatentActionModel, src: Path | str, out: Path | str) -> Path:
    """Copies of the episodes under `src` with their actions replaced by latent action ids."""
    data = Transitions(src, model.cfg.context)
    codes = label(model, data)
    out = Path(out)
    for k, e in enumerate(data.episodes):
        save_episode(
            out / f"episode_{k:04d}",
            Episode(e.frames, codes[data.which == k], e.rewards, e.ends, model.num_actions, e.fps),
            video=False,
        )
    return out


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
