"""Recording real game play as episodes (episodes.py): Atari games from the Arcade Learning
Environment (`ale-py` bundles the ROMs), frames resized to `size` x `size`.

Policies: `random` (each action held for 1-4 steps, as a person presses keys), `scripted`
(follows the ball, for the games that have one: a random policy in Pong or Breakout rarely
returns a ball, so most of what a world model must learn would never be recorded), and
`mixed` (scripted, with a random held action a quarter of the time). Everything is a pure
function of the seed: the same command records the same episodes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from filmstrip.config import require
from filmstrip.errors import InputError
from filmstrip.world.episodes import Episode, save_episode

GAMES = {
    "pong": "ALE/Pong-v5",
    "breakout": "ALE/Breakout-v5",
    "boxing": "ALE/Boxing-v5",
    "freeway": "ALE/Freeway-v5",
    "space_invaders": "ALE/SpaceInvaders-v5",
    "doom": "freedoom1.wad",  # ViZDoom with the Freedoom game data, map E1M1
}
POLICIES = ("random", "scripted", "mixed")


@dataclass(frozen=True)
class RecordConfig:
    game: str = "pong"
    steps: int = 2000  # in all, over as many episodes as that takes
    policy: str = "mixed"
    size: int = 64
    max_episode_steps: int = 1000  # longer games are cut here (not an end)
    frameskip: int = 4  # emulator frames per step, as DIAMOND and most Atari agents use
    seed: int = 0

    def __post_init__(self):
        if self.game not in GAMES:
            raise InputError(f"unknown game {self.game!r}: choose from {', '.join(GAMES)}")
        if self.policy not in POLICIES:
            raise InputError(f"policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")
        if self.policy != "random" and self.game not in SCRIPTS:
            raise InputError(
                f"no scripted policy for {self.game}: use --policy random (scripted: {', '.join(SCRIPTS)})"
            )
        require(self, at_least={"steps": 1, "max_episode_steps": 1, "frameskip": 1, "size": 8})


def _centre(mask: np.ndarray) -> tuple[float, float] | None:
    ys, xs = np.nonzero(mask)
    return (float(xs.mean()), float(ys.mean())) if len(xs) else None


def _pong(frame: np.ndarray, env=None) -> int:
    """Keep the right (green) paddle level with the ball. Actions: 0 noop, 2 up, 3 down."""
    field = frame[34:194]
    paddle = _centre(np.all(field[:, 140:144] == (92, 186, 92), axis=-1))
    ball = _centre(np.all(field == (236, 236, 236), axis=-1))
    if paddle is None or ball is None:
        return 1  # serve
    gap = ball[1] - paddle[1]
    return 0 if abs(gap) < 4 else (3 if gap > 0 else 2)


def _breakout(frame: np.ndarray, env=None) -> int:
    """Keep the paddle under the ball. Actions: 1 fire (serve), 2 right, 3 left."""
    red = np.all(frame[:, 8:152] == (200, 72, 72), axis=-1)  # inside the walls (the right one ends red)
    paddle = _centre(red[189:194])
    ball = _centre(red[93:189])
    if paddle is None or ball is None:
        return 1
    gap = ball[0] - paddle[0]
    return 0 if abs(gap) < 3 else (2 if gap > 0 else 3)


class Doom:
    """ViZDoom's Freedoom E1M1 behind the Gymnasium calls `record` makes. Actions: 0 nothing,
    1 forward, 2 turn left, 3 turn right, 4 forward + left, 5 forward + right, 6 attack. The
    reward is the kills of the step; an episode ends when the player dies or the map ends."""

    BUTTONS = ("MOVE_FORWARD", "TURN_LEFT", "TURN_RIGHT", "ATTACK")
    ACTIONS = (
        (0, 0, 0, 0),
        (1, 0, 0, 0),
        (0, 1, 0, 0),
        (0, 0, 1, 0),
        (1, 1, 0, 0),
        (1, 0, 1, 0),
        (0, 0, 0, 1),
    )

    def __init__(self, frameskip: int, timeout_steps: int):
        import vizdoom as vzd

        self.vzd, self.frameskip = vzd, frameskip
        game = vzd.DoomGame()
        game.set_doom_game_path(str(Path(vzd.__file__).parent / "freedoom1.wad"))
        game.set_doom_map("E1M1")
        game.set_screen_resolution(vzd.ScreenResolution.RES_160X120)
        game.set_screen_format(vzd.ScreenFormat.RGB24)
        game.set_render_hud(False)
        game.set_depth_buffer_enabled(True)
        game.set_window_visible(False)
        game.set_available_buttons([getattr(vzd.Button, b) for b in self.BUTTONS])
        game.set_episode_timeout(timeout_steps * frameskip + 10)
        game.set_mode(vzd.Mode.PLAYER)
        # ViZDoom writes its settings file; keep it out of the user's working directory.
        game.set_doom_config_path(str(Path(tempfile.gettempdir()) / "filmstrip_vizdoom.ini"))
        self.game = game
        self.started = False
        self.depth = None
        self.action_space = type("Discrete", (), {"n": len(self.ACTIONS)})()

    def _observe(self) -> np.ndarray:
        state = self.game.get_state()
        self.depth = state.depth_buffer
        return state.screen_buffer

    def reset(self, seed: int):
        self.game.set_seed(seed)
        if not self.started:
            self.game.init()
            self.started = True
        self.game.new_episode()
        self._kills = self.game.get_game_variable(self.vzd.GameVariable.KILLCOUNT)
        self._last = self._observe()
        return self._last, {}

    def step(self, action: int):
        self.game.make_action(list(self.ACTIONS[action]), self.frameskip)
        done = self.game.is_episode_finished()
        if not done:
            self._last = self._observe()
        kills = self.game.get_game_variable(self.vzd.GameVariable.KILLCOUNT)
        reward, self._kills = kills - self._kills, kills
        return self._last, float(reward), done and self.game.is_player_dead(), done, {}

    def close(self) -> None:
        self.game.close()


def _doom(frame: np.ndarray, env: Doom) -> int:
    """Walk towards open space: forward while the middle of the view is deep, turning to the
    deeper side; turn on the spot in front of a wall."""
    depth = env.depth[env.depth.shape[0] // 3 : 2 * env.depth.shape[0] // 3].astype(np.float32)
    third = depth.shape[1] // 3
    left, middle, right = (
        depth[:, :third].mean(),
        depth[:, third : 2 * third].mean(),
        depth[:, 2 * third :].mean(),
    )
    if middle < 12:
        return 2 if left > right else 3
    if abs(left - right) > 0.3 * middle:
        return 4 if left > right else 5
    return 1


SCRIPTS: dict[str, Callable[[np.ndarray, object], int]] = {
    "pong": _pong,
    "breakout": _breakout,
    "doom": _doom,
}


def make_env(cfg: RecordConfig):
    if cfg.game == "doom":
        try:
            return Doom(cfg.frameskip, cfg.max_episode_steps)
        except ImportError:
            raise InputError(
                "recording Doom needs the world extra: pip install -e '.[world]' (make test installs it)"
            ) from None
    try:
        import ale_py
        import gymnasium as gym
    except ImportError:
        raise InputError(
            "recording games needs the world extra: pip install -e '.[world]' (make test installs it)"
        ) from None
    gym.register_envs(ale_py)
    return gym.make(
        GAMES[cfg.game], frameskip=cfg.frameskip, repeat_action_probability=0.0, full_action_space=False
    )


def record(cfg: RecordConfig, out: Path | str, progress: bool = True) -> list[Path]:
    """Play `cfg.steps` steps and write each episode to `out` (episode_0000.npz, ...)."""
    out = Path(out)
    env = make_env(cfg)
    rng = np.random.default_rng(cfg.seed)
    num_actions = int(env.action_space.n)
    script = SCRIPTS.get(cfg.game)
    fps = (35.0 if cfg.game == "doom" else 60.0) / cfg.frameskip  # Doom runs at 35 tics a second
    paths, done, episode_index = [], 0, 0
    bar = tqdm(total=cfg.steps, desc=f"recording {cfg.game}", unit="step", disable=not progress)
    while done < cfg.steps:
        obs, _ = env.reset(seed=int(rng.integers(2**31)))

        # Frames are kept at the size they are saved at: a long episode at the game's own
        # resolution would hold ten times the memory.
        def small(frame: np.ndarray) -> np.ndarray:
            return cv2.resize(frame, (cfg.size, cfg.size), interpolation=cv2.INTER_AREA)

        frames, actions, rewards, ends = [small(obs)], [], [], []
        held, hold_left = 0, 0
        while done < cfg.steps and len(actions) < cfg.max_episode_steps:
            explore = cfg.policy == "random" or (
                cfg.policy == "mixed" and (hold_left > 0 or rng.random() < 0.25)
            )
            if explore:
                if hold_left == 0:
                    held, hold_left = int(rng.integers(num_actions)), int(rng.integers(1, 5))
                action, hold_left = held, hold_left - 1
            else:
                action = script(obs, env)
            obs, reward, terminated, truncated, _ = env.step(action)
            frames.append(small(obs))
            actions.append(action)
            rewards.append(reward)
            ends.append(terminated)
            done += 1
            bar.update(1)
            if terminated or truncated:
                break
        episode = Episode(
            np.stack(frames),
            np.array(actions),
            np.array(rewards, np.float32),
            np.array(ends),
            num_actions,
            fps,
        )
        paths.append(save_episode(out / f"episode_{episode_index:04d}", episode))
        episode_index += 1
    bar.close()
    env.close()
    return paths
