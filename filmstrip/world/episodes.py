"""The on-disk episode format, for recorded game play and for a user's own frames + actions.

An episode is two files with one name:

* `NAME.npz`: `frames` uint8 (T + 1, H, W, 3), the observation before every step and the one
  after the last; `actions` int64 (T,), the action taken on seeing frame t, which led to
  frame t + 1; `rewards` float32 (T,), what that step earned; `ends` bool (T,), whether the
  episode ended with that step (only the last can be True); and the scalars `num_actions`
  (the size of the action set) and `fps`.
* `NAME.mp4` (optional): the frames as a video, to watch. A user's data may bring frames as a
  video alone (`NAME.mp4` beside an `.npz` without `frames`): `import_folder` reads them.

`import_folder` checks every episode (lengths that agree, action ids inside the action set,
finite rewards, an end only at the last step) and writes the good ones into a training set
folder; each bad one gets one sentence and is skipped and counted.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from filmstrip.atomic import atomic_path
from filmstrip.errors import InputError
from filmstrip.io import VideoReadError, read_video, write_video


@dataclass
class Episode:
    frames: np.ndarray  # uint8 (T + 1, H, W, 3)
    actions: np.ndarray  # int64 (T,)
    rewards: np.ndarray  # float32 (T,)
    ends: np.ndarray  # bool (T,)
    num_actions: int
    fps: float = 15.0

    def __len__(self) -> int:
        return len(self.actions)

    def check(self, name: str = "episode") -> None:
        """One sentence on the first thing wrong, as an InputError."""
        f, a, r, e = self.frames, self.actions, self.rewards, self.ends
        if f.ndim != 4 or f.shape[-1] != 3 or f.dtype != np.uint8:
            raise InputError(f"{name}: frames must be uint8 (T + 1, H, W, 3), got {f.dtype} {f.shape}")
        if not (len(a) == len(r) == len(e)) or len(f) != len(a) + 1:
            raise InputError(
                f"{name}: {len(f)} frames need {len(f) - 1} actions, rewards and ends; "
                f"got {len(a)}, {len(r)} and {len(e)}"
            )
        if len(a) == 0:
            raise InputError(f"{name}: no steps")
        if self.num_actions < 1 or a.min() < 0 or a.max() >= self.num_actions:
            raise InputError(
                f"{name}: action ids must lie in 0..{self.num_actions - 1}, got {a.min()}..{a.max()}"
            )
        if not np.isfinite(r).all():
            raise InputError(f"{name}: rewards must be finite numbers")
        if e[:-1].any():
            raise InputError(
                f"{name}: an end at step {int(np.argmax(e))} before the last step ({len(e) - 1})"
            )


def save_episode(path: Path | str, episode: Episode, video: bool = True) -> Path:
    """Write NAME.npz atomically (and NAME.mp4 to watch); returns the .npz path."""
    episode.check(str(path))
    path = Path(path).with_suffix(".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(
            f,
            frames=episode.frames,
            actions=episode.actions.astype(np.int64),
            rewards=episode.rewards.astype(np.float32),
            ends=episode.ends.astype(bool),
            num_actions=np.int64(episode.num_actions),
            fps=np.float64(episode.fps),
        )
    if video:
        write_video(path.with_suffix(".mp4"), episode.frames.transpose(3, 0, 1, 2), fps=episode.fps)
    return path


def load_episode(path: Path | str) -> Episode:
    """Read an episode (frames from the .npz, or else from the .mp4 beside it), checked."""
    path = Path(path).with_suffix(".npz")
    if path.is_file() and not zipfile.is_zipfile(path):  # numpy would call it pickled data
        raise InputError(f"{path}: not an .npz archive (a zip of arrays, as `world record` writes)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise InputError(f"{path}: no such episode") from None
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise InputError(f"{path}: not a readable .npz episode ({e})") from None
    missing = [k for k in ("actions", "rewards", "ends", "num_actions") if k not in arrays]
    if missing:
        raise InputError(f"{path}: missing {', '.join(missing)}")
    frames = arrays.get("frames")
    if frames is None:
        try:
            video, _ = read_video(path.with_suffix(".mp4"))
        except VideoReadError as e:
            raise InputError(f"{path}: no frames in the .npz and its video cannot be read ({e})") from None
        frames = video.permute(1, 2, 3, 0).numpy()
    episode = Episode(
        frames=frames,
        actions=arrays["actions"].astype(np.int64),
        rewards=arrays["rewards"].astype(np.float32),
        ends=arrays["ends"].astype(bool),
        num_actions=int(arrays["num_actions"]),
        fps=float(arrays.get("fps", 15.0)),
    )
    episode.check(str(path))
    return episode


def import_folder(src: Path | str, out: Path | str) -> tuple[int, list[str]]:
    """Check every episode under `src` and write the good ones to `out` (frames included).
    Returns (episodes written, one sentence per episode skipped)."""
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise InputError(f"{src}: not a folder of episodes")
    written, skipped = 0, []
    for path in sorted(src.rglob("*.npz")):
        try:
            episode = load_episode(path)
        except InputError as e:
            skipped.append(str(e))
            continue
        save_episode(out / path.relative_to(src), episode, video=False)
        written += 1
    if not written and not skipped:
        raise InputError(f"{src}: no episodes (NAME.npz files) found")
    return written, skipped
