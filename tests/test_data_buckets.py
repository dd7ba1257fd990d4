"""Aspect-ratio buckets keep the aspect ratio: no squashing, and cropping within tolerance."""

import numpy as np
import pytest
import torch

from filmstrip.data.buckets import (
    BucketBatchSampler,
    assign_bucket,
    center_crop,
    cover_size,
    crop_loss,
    make_buckets,
)


def test_buckets_have_about_the_asked_area_and_round_sides():
    for b in make_buckets(256 * 256):
        assert b.height % 16 == 0 and b.width % 16 == 0
        assert abs(b.height * b.width / 256**2 - 1) < 0.12


def test_assignment_resize_and_crop_keep_aspect_within_tolerance():
    buckets = make_buckets(128 * 128)
    rng = np.random.default_rng(0)
    seen = 0
    for _ in range(500):
        h, w = int(rng.integers(64, 1200)), int(rng.integers(64, 1200))
        bucket = assign_bucket(h, w, buckets, tolerance=0.15)
        if bucket is None:
            assert min(crop_loss(h, w, b) for b in buckets) > 0.15
            continue
        seen += 1
        assert crop_loss(h, w, bucket) <= 0.15
        rh, rw = cover_size(h, w, bucket)
        assert rh >= bucket.height and rw >= bucket.width
        assert abs(rw / rh - w / h) <= (w / h) * (1 / rh + 1 / rw) + 1e-9  # same aspect up to rounding
        cropped = center_crop(torch.zeros(3, 2, rh, rw), bucket)
        assert cropped.shape == (3, 2, bucket.height, bucket.width)
        # The kept region is the bucket's aspect cut from the resized frame: at most `tolerance` lost.
        assert 1 - bucket.height * bucket.width / (rh * rw) <= 0.15 + 2 / min(rh, rw)
    assert seen > 250


def test_nearest_bucket_is_chosen_in_log_aspect():
    buckets = make_buckets(256 * 256)
    assert assign_bucket(1080, 1920, buckets).aspect == pytest.approx(16 / 9, rel=0.03)
    assert assign_bucket(1920, 1080, buckets).aspect == pytest.approx(9 / 16, rel=0.03)
    assert assign_bucket(500, 500, buckets).aspect == 1.0
    assert assign_bucket(100, 1000, buckets) is None  # 10:1 panorama


def test_batch_sampler_batches_share_a_bucket_and_cover_everything():
    buckets = make_buckets(64 * 64)[:3]
    per_item = [buckets[i % 3] for i in range(23)]
    sampler = BucketBatchSampler(per_item, batch_size=4, seed=1)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(23))
    assert all(len({per_item[i] for i in b}) == 1 for b in batches)
    assert batches == list(sampler)  # deterministic within an epoch
    sampler.set_epoch(1)
    assert batches != list(sampler)
    dropped = BucketBatchSampler(per_item, batch_size=4, drop_last=True)
    assert all(len(b) == 4 for b in dropped) and len(dropped) == 2 + 2 + 1  # 8, 8, 7 items


def test_random_crops_are_windows_of_the_clip_fixed_by_seed_and_index():
    """A crop is a square window of the clip itself, a pure function of (seed, item), and a
    frame smaller than the crop gets one sentence."""
    from filmstrip.data import ShapesConfig, ShapesDataset
    from filmstrip.data.crop import RandomCropDataset
    from filmstrip.errors import InputError

    base = ShapesDataset(ShapesConfig(num_frames=3, height=40, width=56, num_clips=6))
    crops = RandomCropDataset(base, 24, seed=5)
    assert len(crops) == 6 and not crops.varies_by_epoch
    corners = set()
    for i in range(6):
        video, cropped = base[i]["video"], crops[i]["video"]
        assert cropped.shape == (3, 3, 24, 24) and crops[i]["caption"] == base[i]["caption"]
        found = [
            (top, left)
            for top in range(40 - 24 + 1)
            for left in range(56 - 24 + 1)
            if torch.equal(video[..., top : top + 24, left : left + 24], cropped)
        ]
        assert found, f"crop {i} is not a window of its clip"
        corners.add(found[0])
        assert torch.equal(RandomCropDataset(base, 24, seed=5)[i]["video"], cropped)  # same seed, same crop
    assert len(corners) > 1  # not one fixed window
    assert any(
        not torch.equal(RandomCropDataset(base, 24, seed=6)[i]["video"], crops[i]["video"]) for i in range(6)
    )
    with pytest.raises(InputError, match="cannot crop 48x48 from 40x56 frames"):
        RandomCropDataset(base, 48)[0]
