"""Recorded game play: deterministic with a seed, the episode format round-trips, and import
refuses malformed episodes one sentence each."""

import numpy as np
import pytest
from click.testing import CliRunner

from filmstrip.cli import main
from filmstrip.errors import InputError
from filmstrip.world.episodes import Episode, import_folder, load_episode, save_episode
from filmstrip.world.record import RecordConfig, record

pytest.importorskip("ale_py", reason="the world extra: pip install -e '.[world]'")


def _episode(steps: int = 5, num_actions: int = 4) -> Episode:
    rng = np.random.default_rng(0)
    return Episode(
        frames=rng.integers(0, 256, (steps + 1, 16, 16, 3), dtype=np.uint8),
        actions=rng.integers(0, num_actions, steps),
        rewards=rng.normal(size=steps).astype(np.float32),
        ends=np.arange(steps) == steps - 1,
        num_actions=num_actions,
        fps=15.0,
    )


def test_recording_is_deterministic_with_a_seed(tmp_path):
    cfg = RecordConfig(game="pong", steps=40, policy="mixed", size=32, seed=3)
    a, b = (record(cfg, tmp_path / name, progress=False) for name in ("a", "b"))
    assert len(a) == len(b) == 1
    ea, eb = load_episode(a[0]), load_episode(b[0])
    assert ea.frames.shape == (41, 32, 32, 3) and ea.num_actions == 6
    for field in ("frames", "actions", "rewards", "ends"):
        assert np.array_equal(getattr(ea, field), getattr(eb, field))
    other = load_episode(
        record(RecordConfig(game="pong", steps=40, size=32, seed=4), tmp_path / "c", progress=False)[0]
    )
    assert not np.array_equal(other.actions, ea.actions)
    assert ea.frames[1:].std(axis=0).mean() > 0  # the game moves


def test_the_scripted_breakout_policy_scores_more_than_random(tmp_path):
    scores = {}
    for policy in ("random", "scripted"):
        paths = record(
            RecordConfig(game="breakout", steps=600, policy=policy, size=32),
            tmp_path / policy,
            progress=False,
        )
        scores[policy] = sum(load_episode(p).rewards.sum() for p in paths)
    assert scores["scripted"] > 2 * scores["random"]


def test_episode_round_trip(tmp_path):
    episode = _episode()
    path = save_episode(tmp_path / "ep", episode)
    assert path.with_suffix(".mp4").exists()
    back = load_episode(path)
    for field in ("frames", "actions", "rewards", "ends"):
        assert np.array_equal(getattr(back, field), getattr(episode, field))
    assert back.num_actions == 4 and back.fps == 15.0


def test_import_keeps_good_episodes_and_names_each_bad_one(tmp_path):
    src = tmp_path / "src"
    save_episode(src / "good", _episode())
    bad = {
        "short": lambda e: np.savez(src / "short.npz", frames=e.frames[:3], actions=e.actions, rewards=e.rewards,
                                    ends=e.ends, num_actions=4),
        "unknown": lambda e: np.savez(src / "unknown.npz", frames=e.frames, actions=e.actions + 10, rewards=e.rewards,
                                      ends=e.ends, num_actions=4),
        "early": lambda e: np.savez(src / "early.npz", frames=e.frames, actions=e.actions, rewards=e.rewards,
                                    ends=np.arange(5) == 1, num_actions=4),
    }  # fmt: skip
    for write in bad.values():
        write(_episode())
    (src / "junk.npz").write_bytes(b"not a zip file")
    written, skipped = import_folder(src, tmp_path / "out")
    assert written == 1 and len(skipped) == 4
    text = "\n".join(skipped)
    assert "3 frames need 2 actions" in text and "must lie in 0..3" in text
    assert "an end at step 1 before the last step" in text and "junk.npz: not an .npz archive" in text
    assert np.array_equal(load_episode(tmp_path / "out" / "good").frames, _episode().frames)
    with pytest.raises(InputError, match="not a folder"):
        import_folder(tmp_path / "missing", tmp_path / "out")


def test_world_commands(tmp_path):
    result = CliRunner().invoke(main, ["world", "record", "--game", "breakout", "--steps", "30", "--size", "32",
                                       "-o", str(tmp_path / "rec")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "rec" / "episode_0000.npz").exists() and (
        tmp_path / "rec" / "episode_0000.mp4"
    ).exists()
    result = CliRunner().invoke(main, ["world", "import", str(tmp_path / "rec"), str(tmp_path / "set")])
    assert result.exit_code == 0 and "1 episodes imported, 0 skipped" in result.output
    result = CliRunner().invoke(
        main, ["world", "record", "--game", "boxing", "--policy", "scripted", "-o", str(tmp_path)]
    )
    assert result.exit_code == 1 and "no scripted policy for boxing" in result.output


def test_doom_records_deterministically_and_explores(tmp_path):
    pytest.importorskip("vizdoom", reason="the world extra: pip install -e '.[world]'")
    cfg = RecordConfig(game="doom", steps=60, policy="scripted", size=32, seed=2)
    a, b = (load_episode(record(cfg, tmp_path / n, progress=False)[0]) for n in ("a", "b"))
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.actions, b.actions)
    assert a.num_actions == 7 and set(a.actions) <= {1, 2, 3, 4, 5}  # the script walks and turns
    assert np.abs(np.diff(a.frames.astype(np.float32), axis=0)).mean() > 3  # the view changes


@pytest.mark.parametrize(
    "field, value, least",
    [("steps", 0, 1), ("max_episode_steps", -3, 1), ("frameskip", 0, 1), ("size", 7, 8)],
)
def test_record_config_names_the_field_out_of_range(field, value, least):
    with pytest.raises(InputError, match=f"^{field} must be at least {least}, got {value}$"):
        RecordConfig(**{field: value})
