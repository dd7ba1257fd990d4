"""Temporal dimensions on synthetic clips whose answers are known."""

import cv2
import numpy as np
import pytest
import torch

from filmstrip.data.flow import flow
from filmstrip.data.shapes import ShapesConfig, ShapesDataset
from filmstrip.errors import InputError
from filmstrip.eval.lpips import load_lpips
from filmstrip.eval.temporal import feature_consistency, temporal_scores


def _texture(size: int = 112) -> np.ndarray:
    noise = (np.random.default_rng(0).random((size, size, 3)) * 255).astype(np.uint8)
    return cv2.GaussianBlur(noise, (7, 7), 2)


def test_a_still_clip_has_no_motion_no_flicker_and_perfect_smoothness():
    clip = np.stack([_texture()[:64, :64]] * 9)
    s = temporal_scores(clip, lpips=load_lpips())
    assert s.motion == 0.0 and not s.dynamic
    assert s.motion_smoothness == 1.0 and s.warping_error == 0.0 and s.flicker == 0.0
    assert s.background_consistency == pytest.approx(1.0, abs=1e-6)


def test_a_panning_clip_moves_at_its_known_speed():
    texture = _texture()
    clip = np.stack([texture[:64, 3 * k : 3 * k + 64] for k in range(9)])  # content moves left 3 px/frame
    grey = cv2.cvtColor(clip[0], cv2.COLOR_RGB2GRAY), cv2.cvtColor(clip[1], cv2.COLOR_RGB2GRAY)
    f = flow(*grey)[8:-8, 8:-8]
    assert np.median(f[..., 0]) == pytest.approx(-3.0, abs=0.1) and abs(np.median(f[..., 1])) < 0.1
    s = temporal_scores(clip)
    assert s.motion == pytest.approx(3.0, abs=0.3) and s.dynamic  # 3 px > 6 px * 64 / 256
    assert s.motion_smoothness > 0.99 and s.warping_error < 1.0


def test_flicker_measures_what_changes_where_nothing_moves():
    still = _texture()[:64, :64].astype(np.int16)
    jitter = np.array([0, 4, 0, 4, 0, 4, 0, 4, 0])  # grey levels, the whole frame
    clip = np.stack([np.clip(still + j, 0, 255) for j in jitter]).astype(np.uint8)
    assert temporal_scores(clip).flicker == pytest.approx(4.0, abs=0.3)


def test_shuffled_frames_lose_smoothness():
    data = ShapesDataset(ShapesConfig(num_clips=3, num_frames=17))
    for i in range(3):
        video = data[i]["video"]
        shuffled = video[:, torch.randperm(17, generator=torch.Generator().manual_seed(i))]
        ordered, mixed = temporal_scores(video), temporal_scores(shuffled)
        assert ordered.motion_smoothness > 0.995
        assert mixed.motion_smoothness < ordered.motion_smoothness - 0.005
        assert mixed.motion > 2 * ordered.motion


def test_feature_consistency_closed_form():
    same = torch.ones(5, 8)
    assert feature_consistency(same) == pytest.approx(1.0)
    eye = torch.eye(4)  # every frame orthogonal to every other: 0 to the first and the previous
    assert feature_consistency(eye) == pytest.approx(0.0)
    halfway = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])  # cos 45 deg = 0.7071
    expected = ((0.70711 + 0.70711) / 2 + (0.0 + 0.70711) / 2) / 2
    assert feature_consistency(halfway) == pytest.approx(expected, abs=1e-4)


def test_too_short_a_clip_is_refused():
    with pytest.raises(InputError, match="at least 3"):
        temporal_scores(np.zeros((2, 16, 16, 3), np.uint8))
