"""Playing a world model live in a pygame window: the keyboard picks the action, the model
makes every frame.

The UI knows only the environment's interface (env.py), as DIAMOND's does: the same loop
plays the model, replays, or (with `SDL_VIDEODRIVER=dummy`) runs headless for tests and
benchmarks. Keys: the game's keymap, R to restart from a new real start, Esc or closing the
window to stop.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from filmstrip.errors import InputError
from filmstrip.io import check_output_path, write_video

# Per game: (key names held together, action id), first match wins; nothing held is action 0.
# The shipped world model of each game that has one (filmstrip/weights/).
BUNDLED_MODELS = {"pong": "world_pong", "doom": "world_doom"}

KEYMAPS: dict[str, list[tuple[tuple[str, ...], int]]] = {
    "pong": [(("up",), 2), (("down",), 3), (("space",), 1)],  # RIGHT moves the right paddle up
    "breakout": [(("right",), 2), (("left",), 3), (("space",), 1)],
    "doom": [
        (("up", "left"), 4),
        (("up", "right"), 5),
        (("up",), 1),
        (("left",), 2),
        (("right",), 3),
        (("space",), 6),
    ],
}


def action_for(keymap: list[tuple[tuple[str, ...], int]], held: set[str]) -> int:
    """The action of the first keymap entry whose keys are all held; 0 (no-op) when none is."""
    for keys, action in keymap:
        if all(k in held for k in keys):
            return action
    return 0


@dataclass(frozen=True)
class PlayConfig:
    scale: int = 6  # window pixels per frame pixel
    fps: float | None = None  # None: the game's own rate; 0: as fast as the model runs
    frames: int | None = None  # stop after this many frames (headless runs)
    seed: int = 0

    def __post_init__(self):
        if self.scale < 1:
            raise InputError(f"scale is window pixels per frame pixel, at least 1; got {self.scale}")
        if self.fps is not None and not 0 <= self.fps < float("inf"):
            raise InputError(f"fps must be 0 (as fast as it runs) or more, got {self.fps}")
        if self.frames is not None and self.frames < 1:
            raise InputError(f"frames must be at least 1, got {self.frames}")


@dataclass
class PlayStats:
    frames: int
    seconds: float
    total_reward: float
    episodes: int

    @property
    def fps(self) -> float:
        return self.frames / max(self.seconds, 1e-9)


def _keymap_for(env, game: str, keyboard: bool) -> list[tuple[tuple[str, ...], int]]:
    """The game's keys, checked against the model's actions when the keyboard plays."""
    if game not in KEYMAPS:
        raise InputError(f"no keymap for {game!r}: choose from {', '.join(KEYMAPS)}")
    keymap, n = KEYMAPS[game], env.action_space.n
    highest = max(action for _, action in keymap)
    if keyboard and highest >= n:
        raise InputError(
            f"the {game} keys send actions up to {highest}, but this world model takes "
            f"{n} actions (0..{n - 1}): give the game it was trained on with --game"
        )
    return keymap


def _open_display(pygame) -> None:
    pygame.display.init()  # not pygame.init(): no sound device is needed (or present on servers)
    if pygame.display.get_driver() in ("offscreen", "dummy") and not os.environ.get("SDL_VIDEODRIVER"):
        # SDL falls back to drawing nowhere when it finds no screen; a game no one sees and no
        # key can stop would run until killed.
        pygame.display.quit()
        raise InputError(
            "no display to open the game's window on: play where there is a screen (or ssh -X); "
            "for a run with no window set SDL_VIDEODRIVER=dummy and give --frames"
        )
    pygame.font.init()


def _draw(pygame, screen, font, obs_hw3: np.ndarray, scale: int, status: str) -> None:
    """The frame scaled up, and a status line under it."""
    h, w = obs_hw3.shape[:2]
    surface = pygame.surfarray.make_surface(np.ascontiguousarray(obs_hw3.transpose(1, 0, 2)))
    screen.fill((0, 0, 0))
    screen.blit(pygame.transform.scale(surface, (w * scale, h * scale)), (0, 0))
    screen.blit(font.render(status, True, (230, 230, 230)), (6, h * scale + 6))
    pygame.display.flip()


def play(
    env, game: str, cfg: PlayConfig = PlayConfig(), record: Path | None = None, actions=None
) -> PlayStats:
    """Run the window loop until the player stops (or `cfg.frames`). `actions(frame_index)`, if
    given, replaces the keyboard (scripted or headless play)."""
    try:
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame
    except ImportError:
        raise InputError("play needs pygame: pip install -e '.[world]'") from None
    keymap = _keymap_for(env, game, keyboard=actions is None)
    if record is not None:
        check_output_path(record)
    fps = env.metadata.get("render_fps", 15) if cfg.fps is None else cfg.fps
    _open_display(pygame)
    obs, _ = env.reset(seed=cfg.seed)
    h, w = obs.shape[:2]
    screen = pygame.display.set_mode((w * cfg.scale, h * cfg.scale + 28))
    pygame.display.set_caption(f"filmstrip world model: {game}")
    font = pygame.font.Font(None, 24)
    clock = pygame.time.Clock()
    made, total, episodes, n = [obs], 0.0, 1, 0
    start = time.perf_counter()
    try:
        while cfg.frames is None or n < cfg.frames:
            quit_now = False
            for event in pygame.event.get():
                if event.type == pygame.QUIT or (
                    event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE
                ):
                    quit_now = True
                elif event.type == pygame.KEYDOWN and event.key == pygame.K_r:
                    obs, _ = env.reset()
                    episodes += 1
            if quit_now:
                break
            if actions is not None:
                action = int(actions(n))
            else:
                pressed = pygame.key.get_pressed()
                held = {name for keys, _ in keymap for name in keys if pressed[pygame.key.key_code(name)]}
                action = action_for(keymap, held)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += reward
            n += 1
            if record is not None:
                made.append(obs)
            if terminated or truncated:
                obs, _ = env.reset()
                episodes += 1
            live = n / max(time.perf_counter() - start, 1e-9)
            _draw(
                pygame,
                screen,
                font,
                obs,
                cfg.scale,
                f"reward {total:+g}   {live:.0f} frames/s   R restart  Esc quit",
            )
            if fps:
                clock.tick(fps)
    finally:
        seconds = time.perf_counter() - start
        pygame.quit()
        if record is not None and len(made) > 1:
            write_video(record, np.stack(made).transpose(3, 0, 1, 2), fps=fps or 15)
    return PlayStats(n, seconds, total, episodes)
