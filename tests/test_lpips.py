"""ST-LPIPS: the packaged weights load into our network, distances behave, bad input is refused.

Parity with the package's own LPIPS class (exact, 0.0 relative difference on alex and vgg) was
checked once with its torchvision/IPython imports stubbed; docs/RESULTS.md has the numbers.
"""

import importlib.util

import pytest
import torch

from filmstrip.checkpoint import CheckpointError
from filmstrip.data.shapes import ShapesConfig, ShapesDataset
from filmstrip.errors import InputError
from filmstrip.eval.lpips import load_lpips, lpips_video


@pytest.fixture(scope="module")
def alex():
    return load_lpips("alex")


@pytest.fixture(scope="module")
def frames():
    video = ShapesDataset(ShapesConfig(num_clips=4, background="textured"))[1]["video"]
    return video[:, :4].transpose(0, 1)  # (4, 3, 64, 64)


def test_identical_images_are_at_zero_and_distance_is_symmetric(alex, frames):
    other = torch.roll(frames, 3, dims=0)
    assert alex(frames, frames).abs().max().item() == 0.0
    torch.testing.assert_close(alex(frames, other), alex(other, frames))


def test_regression_value_on_a_fixed_pair(alex, frames):
    noisy = (frames + 0.1 * torch.randn(frames.shape, generator=torch.Generator().manual_seed(0))).clamp(
        -1, 1
    )
    d = alex(frames, noisy)
    torch.testing.assert_close(d, torch.tensor([0.25163, 0.24832, 0.24441, 0.23903]), atol=2e-4, rtol=0)


def test_shift_tolerant_yet_sensitive_to_blur_and_noise(alex, frames):
    noisy = (frames + 0.1 * torch.randn(frames.shape, generator=torch.Generator().manual_seed(1))).clamp(
        -1, 1
    )
    blurred = torch.nn.functional.avg_pool2d(frames, 3, 1, 1, count_include_pad=False)
    shifted = torch.roll(frames, 1, dims=-1)
    d_shift, d_blur, d_noise = (alex(frames, x).mean().item() for x in (shifted, blurred, noisy))
    assert d_shift < d_blur / 10 < d_noise / 10


def test_video_distance_is_the_mean_over_frames(alex, frames):
    a = frames.transpose(0, 1)[None]  # (1, 3, 4, H, W)
    b = torch.roll(a, 1, dims=-1)
    per_frame = alex(frames, torch.roll(frames, 1, dims=-1))
    torch.testing.assert_close(lpips_video(alex, a, b), per_frame.mean()[None])


def test_bad_shapes_are_refused(alex, frames):
    with pytest.raises(InputError, match="one shape"):
        alex(frames, frames[:, :, :32])
    with pytest.raises(InputError, match="at least 16"):
        alex(frames[..., :8, :8], frames[..., :8, :8])
    with pytest.raises(InputError, match="must be one of"):
        load_lpips("resnet")


def test_a_missing_package_is_one_clear_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "stlpips_pytorch" else real(name, *a)
    )
    with pytest.raises(CheckpointError, match="pip install --no-deps stlpips-pytorch"):
        load_lpips("alex")


class _RunsCode:
    def __reduce__(self):
        return (print, ("this pickle ran code",))


def test_a_weight_file_that_would_run_code_is_refused(tmp_path, capsys):
    path = tmp_path / "alex_shift_tolerant.pth"
    torch.save({"x": _RunsCode()}, path)
    with pytest.raises(CheckpointError, match="not a readable LPIPS weight file"):
        load_lpips("alex", path=path)
    assert "ran code" not in capsys.readouterr().out
