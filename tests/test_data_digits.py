"""The moving-digits dataset built from the bundled handwritten scans."""

import numpy as np
import torch

from filmstrip.data.digits import _NUMBER_WORDS, DigitsConfig, DigitsDataset, load_digits


def test_bundled_scans_are_the_uci_digits():
    images, labels = load_digits()
    assert images.shape == (1797, 8, 8) and labels.shape == (1797,)
    assert images.min() >= 0.0 and images.max() == 1.0
    assert np.bincount(labels).min() >= 170  # about 180 of each digit


def test_deterministic_and_splits_use_disjoint_handwriting():
    cfg = DigitsConfig(num_frames=8, num_clips=50)
    a, b = DigitsDataset(cfg)[7], DigitsDataset(cfg)[7]
    assert torch.equal(a["video"], b["video"]) and a["caption"] == b["caption"]
    train = {o["scan"] for i in range(50) for o in DigitsDataset(cfg)[i]["truth"]["objects"]}
    test_cfg = DigitsConfig(num_frames=8, num_clips=50, split="test")
    test = {o["scan"] for i in range(50) for o in DigitsDataset(test_cfg)[i]["truth"]["objects"]}
    assert train and test and not train & test


def test_digits_are_drawn_where_the_truth_says_and_captions_name_them():
    cfg = DigitsConfig(num_frames=10, max_digits=1, num_clips=20)
    ds = DigitsDataset(cfg)
    half = cfg.digit_size / 2
    for i in range(20):
        item = ds[i]
        video = item["video"][0].numpy()  # (T, H, W), grey
        (obj,) = item["truth"]["objects"]
        assert str(obj["digit"]) in item["caption"] or _NUMBER_WORDS[obj["digit"]] in item["caption"]
        for t, (cx, cy) in enumerate(obj["positions"]):
            ys, xs = np.nonzero(video[t] > -0.5)  # ink
            assert xs.min() >= cx - half - 1 and xs.max() <= cx + half + 1
            assert ys.min() >= cy - half - 1 and ys.max() <= cy + half + 1
