"""PSNR, SSIM and flicker against reference formulas and scikit-image."""

import numpy as np
import pytest
import torch

from filmstrip.eval.metrics import flicker, psnr, ssim

skimage_metrics = pytest.importorskip("skimage.metrics")


def rand_clip(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1


def to_hwc01(frame_chw: torch.Tensor) -> np.ndarray:
    return ((frame_chw.permute(1, 2, 0).numpy() + 1) / 2).astype(np.float64)


@pytest.mark.parametrize("noise", [0.05, 0.3, 1.0])
def test_ssim_matches_scikit_image(noise):
    x = rand_clip((2, 3, 3, 24, 31))
    y = (x + noise * rand_clip(x.shape, seed=1)).clamp(-1, 1)
    ours = ssim(x, y)
    for b in range(2):
        ref = np.mean(
            [
                skimage_metrics.structural_similarity(
                    to_hwc01(x[b, :, t]),
                    to_hwc01(y[b, :, t]),
                    channel_axis=-1,
                    data_range=1.0,
                    gaussian_weights=True,
                    sigma=1.5,
                    use_sample_covariance=False,
                )
                for t in range(3)
            ]
        )
        assert float(ours[b]) == pytest.approx(ref, abs=1e-10)


def test_psnr_matches_formula_and_scikit_image():
    x = torch.zeros(1, 3, 2, 8, 8)
    y = x + 0.2  # 0.1 on the [0, 1] scale: MSE 0.01, 20 dB
    assert float(psnr(x, y)) == pytest.approx(20.0, abs=1e-5)
    a, b = rand_clip((1, 3, 1, 16, 16)), rand_clip((1, 3, 1, 16, 16), seed=3)
    ref = skimage_metrics.peak_signal_noise_ratio(to_hwc01(a[0, :, 0]), to_hwc01(b[0, :, 0]), data_range=1.0)
    assert float(psnr(a, b)) == pytest.approx(ref, abs=1e-9)
    assert torch.isinf(psnr(a, a)).all()


def test_ssim_of_identical_clips_is_one_and_needs_room_for_its_window():
    x = rand_clip((1, 3, 2, 16, 16))
    assert float(ssim(x, x)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(rand_clip((1, 3, 2, 8, 8)), rand_clip((1, 3, 2, 8, 8)))


def test_flicker_ignores_static_error_and_counts_jumps():
    x = rand_clip((2, 3, 6, 8, 8))
    # A constant per-pixel error does not flicker, however large.
    assert torch.allclose(
        flicker(x + 0.3 * rand_clip((2, 3, 1, 8, 8), seed=5), x), torch.zeros(2, dtype=torch.float64)
    )
    # An error that alternates +d, -d changes by 2d between every pair of frames.
    d = 0.1
    sign = torch.tensor([1.0, -1.0] * 3, dtype=torch.float64).view(1, 1, 6, 1, 1)
    expected = 2 * d * 255 / 2
    assert torch.allclose(flicker(x + d * sign, x), torch.full((2,), expected, dtype=torch.float64))
    with pytest.raises(ValueError, match="two frames"):
        flicker(x[:, :, :1], x[:, :, :1])
    with pytest.raises(ValueError, match="equal shape"):
        flicker(x, x[:, :, :3])
