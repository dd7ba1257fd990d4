"""Camera-motion clips from still photographs (`photos:DIR`) and the bicubic baselines."""

import numpy as np
import pytest
import torch
from PIL import Image

from filmstrip.data import build_dataset
from filmstrip.data.photos import PhotoClipsConfig, PhotoClipsDataset, camera_path, render
from filmstrip.errors import InputError
from filmstrip.eval.reconstruction import bicubic_round_trip, compare
from filmstrip.models.vae import VideoVAE, preset


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for k in range(12):
        # Values in [128, 255]: any view that left the picture would sample black padding.
        array = rng.integers(128, 256, size=(300 + 10 * k, 420, 3), dtype=np.uint8)
        Image.fromarray(array).save(root / f"photo_{k:02d}.png")
    (root / "notes.txt").write_text("not a photo")
    return root


def test_clips_are_deterministic_stay_inside_the_picture_and_vary_by_epoch(photo_dir):
    data = build_dataset(f"photos:{photo_dir}", num_frames=9, height=32, width=48, seed=3)
    assert isinstance(data, PhotoClipsDataset) and len(data.paths) == 10  # every tenth photo is test
    for i in range(40):
        clip = data[i]["video"]
        assert clip.shape == (3, 9, 32, 48)
        assert clip.min() >= 128 / 255 * 2 - 1 - 1e-4  # never outside the picture
    torch.testing.assert_close(data[5]["video"], data[5]["video"])
    assert not torch.equal(data[(5, 0)]["video"], data[(5, 1)]["video"])
    test = build_dataset(f"photos:{photo_dir}", num_frames=9, height=32, width=48, split="test")
    assert {p.name for p in test.paths} == {"photo_00.png", "photo_10.png"}


def test_a_pan_moves_the_view_by_its_path():
    """A horizontal ramp seen by a camera panning right: each frame's values rise by the pan."""
    image = torch.linspace(0, 1, 400).expand(3, 200, 400).contiguous()
    centre = np.array([[150.0 + 5 * t, 100.0] for t in range(4)])
    frames = render(image, centre, np.ones(4), np.zeros(4), 32, 32)
    step = 1 / 399
    shift = (frames[:, 1:] - frames[:, :-1]).mean().item() / step
    assert shift == pytest.approx(5.0, rel=1e-3)


def test_paths_fit_the_picture_and_bad_inputs_are_refused(tmp_path):
    cfg = PhotoClipsConfig(root=str(tmp_path), num_frames=17, height=64, width=64)
    rng = np.random.default_rng(0)
    for _ in range(50):
        centre, scale, angle = camera_path(rng, cfg, 200, 300)
        half = np.abs(np.cos(angle)) * 32 * scale + np.abs(np.sin(angle)) * 32 * scale
        assert (centre[:, 0] - half >= -1e-6).all() and (centre[:, 0] + half <= 300 + 1e-6).all()
        assert (centre[:, 1] - half >= -1e-6).all() and (centre[:, 1] + half <= 200 + 1e-6).all()
    with pytest.raises(InputError, match="smaller than"):
        camera_path(rng, cfg, 40, 300)
    with pytest.raises(InputError, match="no train photos"):
        PhotoClipsDataset(cfg)
    with pytest.raises(InputError, match="no such folder"):
        build_dataset(f"photos:{tmp_path / 'missing'}")


def test_bicubic_baselines_and_compare():
    flat = torch.full((1, 3, 5, 32, 32), 0.25)
    torch.testing.assert_close(bicubic_round_trip(flat, 8), flat)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 5, 32, 32, generator=g) * 2 - 1
    rows = compare(x, {"tiny": VideoVAE(preset("tiny")).eval()})
    assert set(rows) == {"tiny", "bicubic /8", "bicubic /4"}
    assert rows["bicubic /4"]["psnr"] > rows["bicubic /8"]["psnr"]  # more values kept, closer
    assert {"psnr", "ssim", "flicker"} <= set(rows["tiny"])
