"""How good a world model is, on held-out recorded episodes.

* **Fidelity**: next-frame PSNR with real context, and PSNR of autoregressive rollouts driven
  by the recorded actions at several horizons, for any set of predictors (the model, the
  ConvLSTM, copy-the-last-frame) from the same starts. PSNR is of the mean squared error over
  all starts at that horizon (a per-clip mean would be infinite wherever a frame repeats
  exactly), on frames rounded to 8 bits as a player sees them.
* **Action fidelity** (Pong): from the same real context, each paddle action held for a few
  steps must move the player's paddle (found by its colour) the right way. Contexts where the
  paddle already touches the wall it is pushed towards do not count.
* **Action fidelity** (Doom): turning left or right must shift the view the right way. The
  shift is the global horizontal offset that best aligns the upper part of the two frames
  (normalised cross-correlation over whole-pixel offsets): a turn moves the whole view by
  about 8 px a step at 64 px, more than dense optical flow at this size tracks (median DIS
  flow found the recorded game's own turns in only 66-68% of 2-step trials; this, 94-95%).
  The lower part is left out because the weapon sprite stays put while the view turns.
* **Reward and end heads**: precision and recall of nonzero rewards and of episode ends over
  every held-out transition, judged on the real next frame and on the model's own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from filmstrip.config import require
from filmstrip.data.flow import grey
from filmstrip.errors import InputError
from filmstrip.io.layout import from_uint8, to_uint8
from filmstrip.world.model import WorldModel
from filmstrip.world.rollout import Predict, rollout
from filmstrip.world.train import Transitions, to_bnchw


@dataclass(frozen=True)
class FidelityConfig:
    horizons: tuple[int, ...] = (1, 8, 32, 64)
    starts: int = 64  # rollout starts, spread evenly over the held-out steps
    batch: int = 64

    def __post_init__(self):
        require(self, at_least={"starts": 1, "batch": 1})
        if not self.horizons or min(self.horizons) < 1:
            raise InputError(f"horizons are steps ahead, 1 or more each; got {self.horizons}")


def _quantised(frames: torch.Tensor) -> torch.Tensor:
    return from_uint8(to_uint8(frames))


def psnr_of_mse(mse: float) -> float:
    """dB with a [0, 1] peak for an MSE measured in [-1, 1] units."""
    return math.inf if mse == 0 else -10 * math.log10(mse / 4)


def rollout_starts(data: Transitions, count: int, horizon: int) -> list[tuple[int, int]]:
    """(episode, step) pairs with a full context and `horizon` recorded steps after them."""
    ok = [
        j
        for j in range(len(data))
        if data.steps[j] >= data.context - 1 and data.steps[j] + horizon <= len(data.episodes[data.which[j]])
    ]
    if not ok:
        longest = max(len(e) for e in data.episodes)
        raise InputError(
            f"a rollout needs a {data.context}-frame context and {horizon} recorded steps after it; "
            f"the longest episode here has {longest} steps: give longer episodes"
        )
    picks = np.linspace(0, len(ok) - 1, min(count, len(ok))).astype(int)
    return [(int(data.which[ok[p]]), int(data.steps[ok[p]])) for p in picks]


def fidelity(
    predictors: dict[str, Predict], data: Transitions, cfg: FidelityConfig = FidelityConfig()
) -> dict[str, dict[str, float]]:
    """{predictor: {"h1": dB, "h8": dB, ...}}: PSNR of the frame `h` steps after each start,
    rolled out from real context with the recorded actions (h1 is next-frame prediction)."""
    horizon = max(cfg.horizons)
    starts = rollout_starts(data, cfg.starts, horizon)
    out = {}
    for name, predict in predictors.items():
        sq = torch.zeros(horizon)
        for i in tqdm(range(0, len(starts), cfg.batch), desc=f"rollouts of {name}", leave=False):
            chunk = starts[i : i + cfg.batch]
            frames, actions = data.windows(chunk)
            frames = to_bnchw(frames)
            eps = [data.episodes[k] for k, _ in chunk]
            future = torch.from_numpy(
                np.stack([e.actions[s : s + horizon] for e, (_, s) in zip(eps, chunk, strict=True)])
            )
            truth = to_bnchw(
                torch.from_numpy(
                    np.stack(
                        [e.frames[s + 1 : s + 1 + horizon] for e, (_, s) in zip(eps, chunk, strict=True)]
                    )
                )
            )
            made = _quantised(rollout(predict, frames, actions, future))
            sq += (made - truth).square().mean(dim=(2, 3, 4)).sum(0)
        mse = sq / len(starts)
        out[name] = {f"h{h}": psnr_of_mse(float(mse[h - 1])) for h in cfg.horizons}
    return out


# ---- Pong: the player's paddle -----------------------------------------------------------
PONG_UP, PONG_DOWN = (2, 4), (3, 5)  # RIGHT (+FIRE) moves the right paddle up, LEFT (+FIRE) down


def action_effects(game: str) -> tuple[tuple[str, ...], np.ndarray] | None:
    """A game's actions grouped by what they do, where several do the same (Pong: NOOP and
    FIRE keep the paddle still, FIRE only serves): the group names and each action's group."""
    if game.startswith("pong"):
        groups = np.zeros(6, np.int64)
        groups[list(PONG_UP)], groups[list(PONG_DOWN)] = 1, 2
        return ("stay", "up", "down"), groups
    return None


def pong_paddle_y(frames_bhwc: np.ndarray) -> np.ndarray:
    """Vertical centre (pixels) of the player's (right, green) paddle in uint8 frames
    (B, H, W, 3) of any size; NaN where it is not seen."""
    b, h, w, _ = frames_bhwc.shape
    band = frames_bhwc[:, :, int(w * 138 / 160) : int(w * 146 / 160) + 1].astype(np.float32)
    # Green well above red and blue: the paddle (92, 186, 92), even blended into the brown field.
    green = np.clip((band[..., 1] - np.maximum(band[..., 0], band[..., 2]) - 20) / 60, 0, 1).sum(2)  # (B, H)
    rows = np.arange(h, dtype=np.float32)
    mass = green.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mass > 0.5, (green * rows).sum(1) / mass, np.nan)


def pong_paddle_motion(frames_bhwc: np.ndarray, min_move: float = 0.5) -> np.ndarray:
    """What the paddle visibly did between consecutive frames, in the groups of
    `action_effects`: 0 stay, 1 up, 2 down, -1 where it is not seen. int64 (B - 1,)."""
    dy = np.diff(pong_paddle_y(frames_bhwc))
    motion = np.where(dy <= -min_move, 1, np.where(dy >= min_move, 2, 0))
    return np.where(np.isnan(dy), -1, motion)


@dataclass(frozen=True)
class ActionConfig:
    trials: int = 200
    hold: int = 3  # steps the action is held
    min_move: float = 0.5  # pixels the paddle must move the pressed way
    wall_margin: float = 0.12  # of the frame height: paddles this close to a wall are not asked to go into it


def _held(
    predict: Predict, frames: torch.Tensor, actions: torch.Tensor, action: int, hold: int
) -> np.ndarray:
    """The frame made after holding `action` for `hold` steps from each context: uint8 (B, H, W, 3)."""
    future = torch.full((len(frames), hold), action)
    return to_uint8(rollout(predict, to_bnchw(frames), actions, future)[:, -1]).permute(0, 2, 3, 1).numpy()


def pong_action_fidelity(
    predict: Predict, data: Transitions, cfg: ActionConfig = ActionConfig(), drive: list[int] | None = None
) -> dict[str, float]:
    """Share of trials in which holding up (or down) moves the paddle up (or down), per action.
    `drive`: the model's action for each of the game's (a latent-action model's driving map)."""
    size = data.size
    frames, actions = data.windows(rollout_starts(data, cfg.trials, 1))
    y0 = pong_paddle_y(frames[:, -1].numpy())
    top, bottom = size * (34 / 210 + cfg.wall_margin), size * (194 / 210 - cfg.wall_margin)
    out = {}
    for name, ids, sign, allowed in (("up", PONG_UP, -1, y0 > top), ("down", PONG_DOWN, 1, y0 < bottom)):
        for a in ids:
            pressed = a if drive is None else drive[a]
            moved = (pong_paddle_y(_held(predict, frames, actions, pressed, cfg.hold)) - y0) * sign
            valid = allowed & ~np.isnan(y0)
            out[f"{name}_{a}"] = float((moved[valid] >= cfg.min_move).mean())
            out[f"{name}_{a}_trials"] = int(valid.sum())
    return out


# ---- reward and end heads ----------------------------------------------------------------
def _precision_recall(pred: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    tp = float((pred & true).sum())
    return (tp / pred.sum() if pred.sum() else math.nan), (tp / true.sum() if true.sum() else math.nan)


@torch.no_grad()
def head_scores(
    model: WorldModel, data: Transitions, predict: Predict | None = None, batch: int = 256
) -> dict[str, float]:
    """Precision and recall of the heads over every transition of `data`: rewards (nonzero,
    right sign) and ends, judged on the real next frame, or on `predict`'s next frame."""
    rewards, ends, true_r, true_e = [], [], [], []
    on = next(model.parameters()).device
    for i in tqdm(range(0, len(data), batch), desc="heads", leave=False):
        b = data.batch(range(i, min(i + batch, len(data))))
        context, actions = to_bnchw(b["context"]), b["actions"]
        nxt = to_bnchw(b["next"]) if predict is None else predict(context, actions)
        r, e = model.heads(context[:, -1].to(on), nxt.to(on), actions[:, -1].to(on))
        rewards.append(r.argmax(1).cpu().numpy() - 1)
        ends.append((e > 0).cpu().numpy())
        true_r.append(b["reward"].numpy() - 1)
        true_e.append(b["end"].numpy() > 0)
    r, e, tr, te = (np.concatenate(x) for x in (rewards, ends, true_r, true_e))
    out = {}
    for name, pred, true in (
        ("reward+", r > 0, tr > 0),
        ("reward-", r < 0, tr < 0),
        ("end", e, te),
    ):
        out[f"{name}_precision"], out[f"{name}_recall"] = _precision_recall(pred, true)
        out[f"{name}_count"] = int(true.sum())
    return out


# ---- Doom: turning shifts the view -------------------------------------------------------
DOOM_TURNS = {"left": (2, 1), "right": (3, -1)}  # turning left moves the view's content right (+x)


def horizontal_shift(
    a_hwc: np.ndarray, b_hwc: np.ndarray, rows: float = 0.625, max_shift: float = 0.375
) -> int:
    """The horizontal offset (pixels, + when the content moves right) that best aligns frame b
    with frame a (uint8 RGB), by normalised cross-correlation of their top `rows` share over
    offsets up to `max_shift` of the width, each offset scored on the columns the two share."""
    h, w = a_hwc.shape[:2]
    top = slice(0, max(1, round(rows * h)))
    a, b = grey(a_hwc)[top].astype(np.float64), grey(b_hwc)[top].astype(np.float64)
    limit = max(1, round(max_shift * w))
    scores = []
    for s in range(-limit, limit + 1):
        x, y = (a[:, : w - s], b[:, s:]) if s >= 0 else (a[:, -s:], b[:, : w + s])
        x, y = x - x.mean(), y - y.mean()
        scores.append((x * y).sum() / math.sqrt((x * x).sum() * (y * y).sum() + 1e-12))
    return int(np.argmax(scores)) - limit


def doom_action_fidelity(
    predict: Predict | None, data: Transitions, cfg: ActionConfig = ActionConfig(hold=2)
) -> dict[str, float]:
    """Share of trials in which holding turn-left (turn-right) for `cfg.hold` steps shifts the
    view right (left) by at least `cfg.min_move` pixels (`horizontal_shift`). With
    `predict` None, the recorded game itself, over its own steps where a turn was held."""
    out = {}
    for name, (action, sign) in DOOM_TURNS.items():
        if predict is None:
            moves = []
            for e in data.episodes:
                for i in range(len(e) - cfg.hold + 1):
                    if (e.actions[i : i + cfg.hold] == action).all():
                        moves.append(horizontal_shift(e.frames[i], e.frames[i + cfg.hold]) * sign)
        else:
            frames, actions = data.windows(rollout_starts(data, cfg.trials, 1))
            made = _held(predict, frames, actions, action, cfg.hold)
            moves = [horizontal_shift(f[-1], m) * sign for f, m in zip(frames.numpy(), made, strict=True)]
        moves = np.array(moves)
        out[f"turn_{name}"] = float((moves >= cfg.min_move).mean()) if len(moves) else math.nan
        out[f"turn_{name}_trials"] = len(moves)
    return out
