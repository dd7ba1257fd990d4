"""Scene cuts found where shots were joined; flow, its colour wheel and the motion score."""

import cv2
import numpy as np
import pytest
from conftest import smooth_video

from filmstrip.data.cuts import CutConfig, change_scores, detect_cuts, find_cuts
from filmstrip.data.flow import flow, flow_to_rgb, motion_score
from filmstrip.data.shapes import ShapesConfig, ShapesDataset, render
from filmstrip.errors import InputError
from filmstrip.io import iter_frames, read_video, write_video


def _shots(seed: int = 0) -> tuple[np.ndarray, list[int]]:
    """Shots of panning textures and of `shapes` scenes, 9-30 frames each, joined hard."""
    rng = np.random.default_rng(seed)
    shapes = ShapesDataset(ShapesConfig(num_frames=30, height=64, width=96, seed=seed))
    shots, cuts, t = [], [], 0
    for k in range(14):
        n = int(rng.integers(9, 31))
        shot = (
            smooth_video(n, 64, 96, seed=100 * seed + k) if k % 2 else render(shapes.scene(k), shapes.cfg)[:n]
        )
        if shots:
            cuts.append(t)
        shots.append(shot)
        t += n
    return np.concatenate(shots), cuts


def test_cuts_are_found_with_precision_and_recall_above_95_percent():
    found = true = hits = 0
    for seed in range(3):
        frames, cuts = _shots(seed)
        detected = find_cuts(change_scores(frames))
        found, true = found + len(detected), true + len(cuts)
        hits += len(set(detected) & set(cuts))
    assert hits / found >= 0.95 and hits / true >= 0.95


def test_cuts_in_a_file_come_with_their_times(tmp_path):
    frames, cuts = _shots(5)
    path = write_video(tmp_path / "joined.mp4", frames.transpose(3, 0, 1, 2), fps=10)
    times, indices, scores = detect_cuts(path)
    assert len(scores) == len(frames)
    assert len(set(indices) & set(cuts)) >= 0.95 * len(cuts) and len(indices) <= len(cuts) + 1
    assert all(times[i] == pytest.approx(indices[i] / 10) for i in range(len(times)))


def test_a_steady_shot_has_no_cuts_and_bad_settings_are_refused():
    assert find_cuts(change_scores(smooth_video(40, 64, 64))) == []
    with pytest.raises(InputError):
        CutConfig(ratio=1.0)


def test_iter_frames_matches_read_video(tmp_path):
    path = write_video(tmp_path / "c.mp4", smooth_video(12, 32, 48).transpose(3, 0, 1, 2), fps=8)
    streamed = np.stack([f for _, f in iter_frames(path)])
    whole, _ = read_video(path)
    assert np.array_equal(streamed, whole.permute(1, 2, 3, 0).numpy())


def test_flow_colours_and_motion_score():
    texture = smooth_video(1, 80, 120)[0]
    a, b = (cv2.cvtColor(texture[8:72, 8 + s : 104 + s], cv2.COLOR_RGB2GRAY) for s in (0, 2))
    f = flow(a, b)  # content moves left by 2 px: a(x) = b(x - 2)
    assert np.median(f[..., 0]) == pytest.approx(-2, abs=0.1)
    rgb = flow_to_rgb(np.broadcast_to(np.array([1.0, 0.0], np.float32), (4, 4, 2)).copy())
    assert tuple(rgb[0, 0]) == (255, 0, 0)  # rightward motion is red
    still = flow_to_rgb(np.zeros((4, 4, 2), np.float32))
    assert still.max() == 0
    speeds = [motion_score([texture[:64, s * k : s * k + 64] for k in range(8)], fps=8) for s in (0, 1, 2, 4)]
    assert speeds[0] < 0.01 and speeds == sorted(speeds)
    assert speeds[3] == pytest.approx(4 * 8 / 64, rel=0.1)  # 4 px per frame at 8 fps on a 64 px side


def test_cuts_and_flow_commands(tmp_path):
    from click.testing import CliRunner

    from filmstrip.cli import main

    frames, cuts = _shots(1)
    path = write_video(tmp_path / "joined.mp4", frames.transpose(3, 0, 1, 2), fps=10)
    result = CliRunner().invoke(main, ["data", "cuts", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith(f"{cuts[0] / 10:.3f}")
    assert result.output.splitlines()[-1] == f"{len(cuts)} cuts in {len(frames)} frames"

    clip = write_video(tmp_path / "pan.mp4", smooth_video(6, 32, 48).transpose(3, 0, 1, 2), fps=8)
    result = CliRunner().invoke(
        main, ["data", "flow", str(clip), "-o", str(tmp_path / "flow.mp4"), "--size", "32"]
    )
    assert result.exit_code == 0, result.output
    video, _ = read_video(tmp_path / "flow.mp4")
    assert video.shape == (3, 6, 32, 96)  # the frame and its flow side by side
    assert video[:, 0, :, 48:].float().mean() < 2  # the first frame has no motion yet: black
    assert video[:, 3, :, 48:].float().mean() > 10  # the pan shows up
