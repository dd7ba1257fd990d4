"""FID: TensorFlow's resize in closed form, the Inception's checks and determinism, the command."""

import pytest
import torch

from filmstrip.checkpoint import CheckpointError
from filmstrip.cli import main
from filmstrip.eval.fid import fid, frames_of, inception_features, load_inception, tf_bilinear_resize


@pytest.fixture(scope="module")
def inception():
    from filmstrip.eval.fid import source_model

    try:
        source_model()
    except CheckpointError as e:
        pytest.skip(str(e))
    return load_inception()


def test_tf_bilinear_resize_reads_source_x_times_in_over_out():
    """TensorFlow 1 (no half-pixel centres): output pixel x shows source position x * in / out,
    linearly interpolated, clamped at the last pixel. On a ramp that is the position itself."""
    ramp = torch.arange(64.0).view(1, 1, 1, 64).expand(1, 3, 64, 64)
    out = tf_bilinear_resize(ramp, 299)[0, 0, 0]
    expected = (torch.arange(299.0) * 64 / 299).clamp(max=63)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-4)
    same = torch.rand(2, 3, 299, 299)
    torch.testing.assert_close(tf_bilinear_resize(same, 299), same, rtol=0, atol=1e-4)  # float32 grid


def test_inception_is_checked_by_hash(tmp_path):
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"not the network")
    with pytest.raises(CheckpointError, match="not the FID Inception"):
        load_inception(path=fake)


def test_inception_features_are_deterministic_and_a_set_is_at_distance_zero_from_itself(inception):
    g = torch.Generator().manual_seed(0)
    video = torch.rand(2, 3, 3, 32, 32, generator=g) * 2 - 1
    frames = frames_of(video)
    assert frames.shape == (6, 3, 32, 32) and torch.equal(frames[1], video[0, :, 1])
    a = inception_features(inception, [frames[:4], frames[4:]])
    b = inception_features(inception, [frames])
    assert a.shape == (6, 2048) and (a >= 0).all()  # pool features after ReLU
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert fid(a, a) == pytest.approx(0.0, abs=1e-6)
    assert fid(a, inception_features(inception, [frames.flip(-1) * 0.5])) > 1


def test_eval_fid_command(inception, tmp_path):
    from click.testing import CliRunner

    from filmstrip.data import ShapesConfig, ShapesDataset
    from filmstrip.io import write_video

    data = ShapesDataset(ShapesConfig(num_clips=4, num_frames=3, height=32, width=32))
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    for i in range(2):
        write_video(tmp_path / "a" / f"{i}.mp4", data[i]["video"], fps=8)
        write_video(tmp_path / "b" / f"{i}.mp4", data[i + 2]["video"], fps=8)
    (tmp_path / "b" / "broken.png").write_text("not an image")
    result = CliRunner().invoke(main, ["eval", "fid", str(tmp_path / "a"), str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "6 images and frames" in result.output and "1 unreadable files skipped" in result.output
    assert float(result.output.strip().splitlines()[-1]) > 0
    (tmp_path / "c").mkdir()
    empty = CliRunner().invoke(main, ["eval", "fid", str(tmp_path / "a"), str(tmp_path / "c")])
    assert empty.exit_code == 1 and "no image or video files" in empty.output
