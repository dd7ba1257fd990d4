"""Record real Atari game play to .mp4 files: footage for training and testing on real video.

ale-py bundles the game ROMs, so nothing is downloaded. The player is random but sticky
(each action is held for a random 4-16 frames), which keeps the screen moving the way play
does. Frames are written at 30 fps (every second emulator frame) at the native 160x210.

    pip install ale-py
    python scripts/record_atari.py OUT_DIR --games pong,breakout --seconds 20

ale-py is a dependency of this script only, not of filmstrip.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from filmstrip.io import write_video

DEFAULT_GAMES = "pong,breakout,space_invaders,ms_pacman,seaquest,boxing,freeway,enduro,riverraid,asterix"


def record(game: str, seconds: float, seed: int) -> np.ndarray:
    from ale_py import ALEInterface, roms

    ale = ALEInterface()
    ale.setInt("random_seed", seed)
    ale.setFloat("repeat_action_probability", 0.0)
    ale.loadROM(roms.get_rom_path(game))
    actions = ale.getMinimalActionSet()
    rng = np.random.default_rng(seed)
    frames, action, hold = [], actions[0], 0
    for step in range(int(seconds * 60)):
        if hold == 0:
            action, hold = actions[rng.integers(len(actions))], int(rng.integers(4, 17))
        ale.act(action)
        hold -= 1
        if ale.game_over():
            ale.reset_game()
        if step % 2 == 0:
            frames.append(ale.getScreenRGB())
    return np.stack(frames)  # (T, 210, 160, 3) uint8


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--games", default=DEFAULT_GAMES)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for game in args.games.split(","):
        frames = record(game, args.seconds, args.seed)
        path = write_video(
            args.out_dir / f"atari_{game}.mp4", torch.from_numpy(frames).permute(3, 0, 1, 2), fps=30
        )
        print(f"{path}: {len(frames)} frames")


if __name__ == "__main__":
    main()
