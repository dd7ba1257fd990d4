"""Frame selection, uniform in index and uniform in time, against indices computed by hand."""

from fractions import Fraction

import numpy as np
import pytest
from conftest import decoded_frame_ids, write_indexed_clip

from filmstrip.io import VideoReadError, read_video
from filmstrip.io.sampling import indices_uniform_in_index, indices_uniform_in_time


def test_index_mode_native_rate_takes_consecutive_frames():
    assert indices_uniform_in_index(60, 30.0, num_frames=5, first=7).tolist() == [7, 8, 9, 10, 11]


def test_index_mode_at_lower_fps_rounds_half_up():
    # stride 30/12 = 2.5: 0, 2.5, 5, 7.5, 10 -> 0, 3, 5, 8, 10
    assert indices_uniform_in_index(60, 30.0, num_frames=5, fps=12).tolist() == [0, 3, 5, 8, 10]


def test_time_mode_takes_the_frame_on_screen():
    ts = np.arange(60) / 30
    # ticks 0, 1/12, 2/12, ... -> frames floor(2.5 k): 0, 2, 5, 7, 10
    assert indices_uniform_in_time(ts, 2.0, num_frames=5, fps=12).tolist() == [0, 2, 5, 7, 10]


def test_modes_agree_on_cfr_at_native_rate():
    ts = np.arange(60) / 30
    a = indices_uniform_in_index(60, 30.0, num_frames=20)
    b = indices_uniform_in_time(ts, 2.0, num_frames=20)
    assert a.tolist() == b.tolist() == list(range(20))


def test_higher_fps_repeats_frames_in_time_mode():
    ts = np.arange(10) / 10
    assert indices_uniform_in_time(ts, 1.0, num_frames=6, fps=20).tolist() == [0, 0, 1, 1, 2, 2]


def test_all_frames_when_num_frames_is_none():
    assert indices_uniform_in_index(10, 10.0).tolist() == list(range(10))
    assert indices_uniform_in_index(10, 10.0, fps=4).tolist() == [0, 3, 5, 8]  # 2.5 stride
    assert indices_uniform_in_time(np.arange(10) / 10, 1.0, fps=4).tolist() == [0, 2, 5, 7]


def test_request_that_does_not_fit_is_refused():
    with pytest.raises(VideoReadError, match="asked for 16 frames"):
        indices_uniform_in_index(40, 30.0, num_frames=16, fps=4)
    with pytest.raises(VideoReadError, match="asked for 16 frames"):
        indices_uniform_in_time(np.arange(40) / 30, 40 / 30, num_frames=16, fps=4)


def test_decoded_frames_match_hand_computed_indices_on_cfr(cfr30):
    video, clip = read_video(cfr30, num_frames=5, fps=12, sampling="index")
    assert list(clip.indices) == [0, 3, 5, 8, 10]
    assert decoded_frame_ids(video) == [0, 3, 5, 8, 10]
    video, clip = read_video(cfr30, num_frames=5, fps=12, sampling="time")
    assert list(clip.indices) == [0, 2, 5, 7, 10]
    assert decoded_frame_ids(video) == [0, 2, 5, 7, 10]
    assert clip.fps == 12


def test_start_offset_seeks_to_the_right_frame(cfr30):
    video, clip = read_video(cfr30, num_frames=4, start=1.0)  # frame 30 is shown at 1.0 s
    assert decoded_frame_ids(video) == [30, 31, 32, 33]
    video, _ = read_video(cfr30, num_frames=3, fps=10, start=1.0, sampling="time")
    assert decoded_frame_ids(video) == [30, 33, 36]


def test_variable_frame_rate_modes_differ(tmp_path):
    # 10 frames: the first five 100 ms apart, the last five 20 ms apart (timestamps in ms).
    pts = [0, 100, 200, 300, 400, 420, 440, 460, 480, 500]
    path = write_indexed_clip(tmp_path / "vfr.mkv", pts, Fraction(1, 1000))
    # Index mode ignores time: four consecutive frames.
    video, clip = read_video(path, num_frames=4, start=0.3, sampling="index")
    assert decoded_frame_ids(video) == [3, 4, 5, 6]
    assert clip.video.variable_frame_rate
    # Time mode at 20 fps from 0.3 s: ticks 0.30, 0.35, 0.40, 0.45 -> frames on screen 3, 3, 4, 6.
    video, clip = read_video(path, num_frames=4, fps=20, start=0.3, sampling="time")
    assert list(clip.indices) == [3, 3, 4, 6]
    assert decoded_frame_ids(video) == [3, 3, 4, 6]
    assert clip.timestamps == pytest.approx((0.3, 0.3, 0.4, 0.44))
