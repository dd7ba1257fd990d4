"""Write/read round trips, probing, and a clear VideoReadError for every kind of bad input."""

import av
import numpy as np
import pytest
import torch
from conftest import smooth_video

from filmstrip.io import VideoReadError, VideoWriteError, probe, read_video, to_uint8_thwc, write_video


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


@pytest.mark.parametrize(("suffix", "min_psnr"), [(".mp4", 35.0), (".webm", 33.0), (".gif", 28.0)])
def test_write_read_round_trip(tmp_path, suffix, min_psnr):
    frames_thwc = smooth_video(16, 48, 64)
    path = write_video(tmp_path / f"clip{suffix}", torch.from_numpy(frames_thwc).permute(3, 0, 1, 2), fps=12)
    video, clip = read_video(path)
    assert video.shape == (3, 16, 48, 64) and video.dtype == torch.uint8
    assert clip.video.num_frames == 16
    assert clip.fps == pytest.approx(12, rel=0.02)  # GIF rounds delays to 1/100 s
    assert psnr(to_uint8_thwc(video), frames_thwc) > min_psnr


def test_lossless_mp4_returns_every_pixel_exactly(tmp_path):
    frames_thwc = np.random.default_rng(0).integers(0, 256, (5, 32, 48, 3), dtype=np.uint8)  # noise: hardest
    path = write_video(
        tmp_path / "exact.mp4", torch.from_numpy(frames_thwc).permute(3, 0, 1, 2), fps=8, lossless=True
    )
    video, _ = read_video(path)
    np.testing.assert_array_equal(to_uint8_thwc(video), frames_thwc)
    with pytest.raises(VideoWriteError, match="lossless writing is for .mp4 only"):
        write_video(
            tmp_path / "exact.webm", torch.from_numpy(frames_thwc).permute(3, 0, 1, 2), fps=8, lossless=True
        )


def test_float_input_and_output_use_minus_one_to_one(tmp_path):
    video_f = torch.linspace(-1, 1, 3 * 4 * 16 * 16).reshape(3, 4, 16, 16)
    path = write_video(tmp_path / "f.mp4", video_f, fps=8)
    back, _ = read_video(path, dtype=torch.float32)
    assert back.dtype == torch.float32 and back.is_contiguous()
    assert back.min() >= -1.0 and back.max() <= 1.0
    assert (back - video_f).abs().mean() < 0.05


def test_resize_by_short_side_and_exact(tmp_path):
    path = write_video(tmp_path / "c.mp4", smooth_video(4, 48, 96).transpose(3, 0, 1, 2), fps=8)
    assert read_video(path, size=24)[0].shape == (3, 4, 24, 48)
    assert read_video(path, size=(30, 40))[0].shape == (3, 4, 30, 40)


def test_probe_reports_stream_facts(tmp_path):
    path = write_video(tmp_path / "c.webm", smooth_video(10, 32, 48).transpose(3, 0, 1, 2), fps=5)
    info = probe(path)
    assert (info.width, info.height, info.num_frames) == (48, 32, 10)
    assert info.fps == pytest.approx(5) and info.duration == pytest.approx(2.0)
    assert info.codec == "vp9" and not info.variable_frame_rate and not info.truncated


def test_odd_sizes_are_padded_for_h264(tmp_path):
    with pytest.warns(UserWarning, match="padding"):
        path = write_video(tmp_path / "odd.mp4", smooth_video(3, 31, 45).transpose(3, 0, 1, 2), fps=8)
    assert probe(path).height == 32 and probe(path).width == 46


def test_float_video_in_another_range_is_written_with_a_warning(tmp_path):
    import warnings

    as_255 = torch.from_numpy(smooth_video(3, 16, 16).transpose(3, 0, 1, 2)).float()
    with pytest.warns(UserWarning, match=r"float pixels from \d+ to \d+ were clipped to \[-1, 1\]"):
        write_video(tmp_path / "a.mp4", as_255, fps=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a decoder's slight overshoot is clipped quietly
        write_video(tmp_path / "b.mp4", (as_255 / 127.5 - 1) * 1.05, fps=8)


def test_write_is_atomic_and_leaves_no_partial_file(tmp_path):
    with pytest.raises(VideoWriteError, match="cannot write '.avi'"):
        write_video(tmp_path / "x.avi", np.zeros((3, 2, 8, 8), np.uint8), fps=8)
    with pytest.raises(VideoWriteError, match=r"\(C, T, H, W\)"):
        write_video(tmp_path / "x.mp4", np.zeros((2, 8, 8), np.uint8), fps=8)
    with pytest.raises(VideoWriteError, match="fps"):
        write_video(tmp_path / "x.mp4", np.zeros((3, 2, 8, 8), np.uint8), fps=0)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path):
    with pytest.raises(VideoReadError, match="no such file"):
        read_video(tmp_path / "nope.mp4")


def test_directory_and_empty_file(tmp_path):
    with pytest.raises(VideoReadError, match="is a directory"):
        probe(tmp_path)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoReadError, match="empty"):
        read_video(tmp_path / "empty.mp4")


def test_not_a_video(tmp_path):
    (tmp_path / "notes.mp4").write_text("these are not frames " * 50)
    with pytest.raises(VideoReadError, match="not a video file"):
        read_video(tmp_path / "notes.mp4")


def test_audio_only(tmp_path):
    path = tmp_path / "sound.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(VideoReadError, match="has no video stream.*audio"):
        read_video(path)


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_zero_frames(tmp_path, suffix):
    path = tmp_path / f"zero{suffix}"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width = stream.height = 16
        container.start_encoding()
    with pytest.raises(VideoReadError, match="no frames"):
        read_video(path)


def test_truncated_file_raises_unless_partial_is_allowed(tmp_path):
    full = write_video(tmp_path / "full.mp4", smooth_video(30, 64, 64).transpose(3, 0, 1, 2), fps=10)
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    with pytest.raises(VideoReadError, match="truncated or corrupt.*allow_partial"):
        read_video(cut)
    assert probe(cut).truncated
    with pytest.warns(UserWarning, match="truncated or corrupt"):
        video, clip = read_video(cut, allow_partial=True)
    assert clip.partial and 0 < video.shape[1] < 30


def test_corrupt_middle_raises_unless_partial_is_allowed(tmp_path):
    full = write_video(tmp_path / "full.mp4", smooth_video(30, 64, 64).transpose(3, 0, 1, 2), fps=10)
    data = bytearray(full.read_bytes())
    rng = np.random.default_rng(0)
    middle = len(data) // 3
    data[middle : middle + 2000] = rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    with pytest.raises(VideoReadError, match="corrupt"):
        read_video(bad)
    with pytest.warns(UserWarning, match="truncated or corrupt"):
        video, clip = read_video(bad, allow_partial=True)
    assert clip.partial and video.shape[1] < 30


def test_requests_that_cannot_be_met(cfr30):
    with pytest.raises(VideoReadError, match=r"cfr30.mp4: asked for 100 frames"):
        read_video(cfr30, num_frames=100)
    with pytest.raises(VideoReadError, match="asked for 16 frames at 4 fps"):
        read_video(cfr30, num_frames=16, fps=4, sampling="time")
    with pytest.raises(VideoReadError, match="past the last frame"):
        read_video(cfr30, num_frames=2, start=5.0)
    for size in (0, (32, -1), (32,), "big", 2.5):
        with pytest.raises(VideoReadError, match="size must be"):
            read_video(cfr30, size=size)
    with pytest.raises(VideoReadError, match="sampling must be"):
        read_video(cfr30, sampling="random")
    with pytest.raises(VideoReadError, match="num_frames must be"):
        read_video(cfr30, num_frames=0)


def test_fast_yuv_conversion_agrees_with_pyav(tmp_path):
    # The OpenCV path must give the colours PyAV's own (swscale) conversion gives, up to rounding.
    from filmstrip.io.reader import _frame_to_rgb

    path = write_video(tmp_path / "c.mp4", smooth_video(4, 64, 96).transpose(3, 0, 1, 2), fps=8)
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            assert frame.format.name == "yuv420p"
            fast = np.empty((64, 96, 3), np.uint8)
            _frame_to_rgb(frame, fast)
            reference = frame.to_ndarray(format="rgb24").astype(np.int64)
            assert np.abs(fast - reference).mean() < 1.5
            assert np.abs(fast - reference).max() <= 6


@pytest.mark.parametrize("rotation", [90, 270, 180])
def test_display_rotation_is_applied(tmp_path, rotation):
    """Phone footage stores landscape frames with a display matrix: read it as displayed."""
    import av

    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10, options={"crf": "10"})
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(rotation)
        for _ in range(3):
            frame = np.zeros((32, 64, 3), np.uint8)
            frame[:, :16] = 255  # a white band on the stored frame's left
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    info = probe(path)
    assert info.rotation == rotation
    assert (info.height, info.width) == ((64, 32) if rotation in (90, 270) else (32, 64))
    video, _ = read_video(path)
    assert video.shape == (3, 3, info.height, info.width)
    bright = video[0, 0].float()
    # Turned counter-clockwise, the left band ends at the bottom (90), top (270) or right (180).
    side = {90: bright[-8:].mean(), 270: bright[:8].mean(), 180: bright[:, -8:].mean()}[rotation]
    assert side > 200 and bright.mean() < 100
