"""Latent actions from unlabeled frames: the codes line up with the true actions on data where
the action is visible, the best one-to-one map is exact on known counts, and labelled
episodes are valid training data."""

import json

import numpy as np
import pytest
import torch

from filmstrip.errors import InputError
from filmstrip.models.unet import UNetConfig
from filmstrip.world.episodes import Episode, load_episode, save_episode
from filmstrip.world.latent_actions import (
    LatentActionConfig,
    LatentActionModel,
    LatentActionTask,
    best_mapping,
    driving_map,
    label,
    label_folder,
    purity,
)
from filmstrip.world.train import Transitions, to_bnchw


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
        unet=UNetConfig(in_channels=5, channels=(16, 32), blocks=1, cond_dim=32),
    )
    model = LatentActionTask(cfg).model.eval()
    codes = label(model, data)
    assert codes.shape == (24,) and codes.min() >= 0 and codes.max() < 4
    out = label_folder(model, tmp_path / "src", tmp_path / "out")
    labelled = load_episode(out / "episode_0000")
    assert labelled.num_actions == 4 and np.array_equal(labelled.frames, data.episodes[0].frames)
    assert np.array_equal(labelled.actions, codes)


def _square_moves(batch: int, rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    """A 2 x 2 square on black that action 0 moves 2 px right and action 1 moves 2 px left:
    frames as still as a game's, where an unnormalised bottleneck starts with one code."""
    actions = rng.integers(0, 2, batch)
    y, x = rng.integers(0, 14, batch), rng.integers(2, 12, batch)
    context = np.zeros((batch, 1, 16, 16, 3), np.uint8)
    nxt = np.zeros((batch, 16, 16, 3), np.uint8)
    for i in range(batch):
        context[i, 0, y[i] : y[i] + 2, x[i] : x[i] + 2] = 255
        nx = x[i] + (2 if actions[i] == 0 else -2)
        nxt[i, y[i] : y[i] + 2, nx : nx + 2] = 255
    return {"context": torch.from_numpy(context), "next": torch.from_numpy(nxt)}, actions


def test_codes_learn_the_action_from_still_frames():
    # Before the batch-normed bottleneck and the code planes, this model kept one code for
    # 160 steps (mapping at chance); now the codes carry the action (4 seeds of 4 at this
    # batch and rate; at lr 1e-3 or batch 32, 2-3 of 4).
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cfg = LatentActionConfig(
        size=16,
        context=1,
        levels=(2,),
        width=16,
        unet=UNetConfig(in_channels=4, channels=(16,), blocks=1, cond_dim=16),
    )
    task = LatentActionTask(cfg)
    model = task.model
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    for step in range(160):
        loss, _ = task.loss(model, _square_moves(64, rng)[0], step, None, None)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    task.export(model)  # recomputes the bottleneck statistics, as inference uses them
    model.eval()
    batch, actions = _square_moves(256, rng)
    with torch.no_grad():
        codes = model.codes(to_bnchw(batch["context"]), to_bnchw(batch["next"])).numpy()
    assert best_mapping(actions, codes, 2, 2)[1] >= 0.95


def test_calibrate_sets_the_statistics_of_the_given_batches():
    torch.manual_seed(0)
    cfg = LatentActionConfig(
        size=16, context=1, levels=(2, 2), width=8, unet=UNetConfig(in_channels=5, channels=(8,), blocks=1)
    )
    model = LatentActionModel(cfg).eval()
    batches = [(torch.rand(16, 1, 3, 16, 16) * 2 - 1, torch.rand(16, 3, 16, 16) * 2 - 1) for _ in range(3)]
    model.calibrate(batches)
    with torch.no_grad():
        raw = torch.cat([model.encoder[:-1](model.encoder_input(c, n)) for c, n in batches])
    norm = model.encoder[-1]
    assert not model.training
    torch.testing.assert_close(norm.running_mean, raw.mean(0), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(norm.running_var, raw.var(0), atol=1e-5, rtol=1e-4)


def test_driving_map_and_purity_on_known_counts():
    true = np.array([0, 0, 1, 1, 1, 2, 3])
    latent = np.array([5, 5, 2, 2, 0, 2, 5])
    assert driving_map(true, latent, 5, 6) == [5, 2, 2, 5, 2]  # action 4 unseen: the commonest code
    assert purity(true, latent, 6) == pytest.approx((2 + 2 + 1) / 7)


def test_label_command_writes_the_driving_map(tmp_path):
    from dataclasses import asdict

    from click.testing import CliRunner

    from filmstrip.checkpoint import save_model
    from filmstrip.cli import main

    save_episode(tmp_path / "src" / "e", _dots(40, 1), video=False)
    torch.manual_seed(0)
    cfg = LatentActionConfig(
        size=16, context=1, levels=(2, 2), width=8, unet=UNetConfig(in_channels=5, channels=(8,), blocks=1)
    )
    model = LatentActionModel(cfg)
    save_model(tmp_path / "lam", LatentActionModel.kind, asdict(cfg), model.state_dict(), {})
    result = CliRunner().invoke(
        main, ["world", "label", str(tmp_path / "lam"), str(tmp_path / "src"), str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "action_map.json").read_text())
    codes = load_episode(tmp_path / "out" / "episode_0000").actions
    true = _dots(40, 1).actions
    assert report["driving_map"] == driving_map(true, codes, 4, 4)
    assert report["one_to_one_accuracy"] == pytest.approx(best_mapping(true, codes, 4, 4)[1])
    assert "effects" not in report  # dots are no game with synonymous actions


def _paddle(steps: int) -> Episode:
    """Pong's green paddle on its brown field, moved 1 px by each key (2, 4 up; 3, 5 down;
    0, 1 still), never into a wall: its visible motion always matches the key."""
    actions = np.resize([2, 2, 0, 3, 3, 1, 4, 5], steps)
    y, frames = 7, []
    for a in [None, *actions]:
        y += {2: -1, 4: -1, 3: 1, 5: 1}.get(a, 0)
        f = np.full((16, 16, 3), (109, 118, 43), np.uint8)
        f[y : y + 3, 13] = (92, 186, 92)
        frames.append(f)
    return Episode(np.stack(frames), actions, np.zeros(steps, np.float32), np.zeros(steps, bool), 6, 15.0)


def test_pong_paddle_motion_follows_the_keys():
    from filmstrip.world.evaluate import action_effects, pong_paddle_motion

    e = _paddle(24)
    _, groups = action_effects("pong")
    assert (pong_paddle_motion(e.frames) == groups[e.actions]).all()
    hidden = e.frames.copy()
    hidden[5] = (109, 118, 43)  # the paddle gone from one frame: both steps touching it are unseen
    assert (pong_paddle_motion(hidden)[[4, 5]] == -1).all()


def test_label_command_reports_the_visible_motion_for_pong(tmp_path):
    from dataclasses import asdict

    from click.testing import CliRunner

    from filmstrip.checkpoint import save_model
    from filmstrip.cli import main

    save_episode(tmp_path / "pong_src" / "e", _paddle(40), video=False)
    torch.manual_seed(0)
    cfg = LatentActionConfig(
        size=16, context=1, levels=(2, 2), width=8, unet=UNetConfig(in_channels=5, channels=(8,), blocks=1)
    )
    save_model(tmp_path / "lam", LatentActionModel.kind, asdict(cfg), LatentActionModel(cfg).state_dict(), {})
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["world", "label", str(tmp_path / "lam"), str(tmp_path / "pong_src"), str(out)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "action_map.json").read_text())
    # Here the motion is the key's effect, so the codes line up with both equally.
    assert report["observed_agrees_with_pressed"] == 1.0
    assert report["observed_purity"] == pytest.approx(report["effects_purity"])
    assert report["observed_accuracy"] == pytest.approx(report["effects_accuracy"])
    assert report["one_to_one"] is None  # 6 keys, 4 codes: no one-to-one map, but labels all the same
    assert len(report["driving_map"]) == 6 and len(load_episode(out / "episode_0000").actions) == 40
