"""A folder of the user's own videos: captions, buckets, and skipped files counted, not hidden."""

import json

import pytest
import torch
from conftest import smooth_video
from torch.utils.data import DataLoader

from filmstrip.data import FolderConfig, FolderDataset, build_dataset, collate_clips
from filmstrip.data.buckets import BucketBatchSampler
from filmstrip.io import write_video


def _clip(path, frames, height, width, fps=10):
    return write_video(path, smooth_video(frames, height, width).transpose(3, 0, 1, 2), fps=fps)


@pytest.fixture
def footage(tmp_path):
    _clip(tmp_path / "wide.mp4", 40, 72, 128)  # 16:9
    _clip(tmp_path / "square.webm", 30, 64, 64)
    (tmp_path / "square.txt").write_text("a square clip\n")
    (tmp_path / "sub").mkdir()
    _clip(tmp_path / "sub" / "tall.mp4", 30, 128, 72)  # 9:16
    (tmp_path / "captions.jsonl").write_text(
        json.dumps({"file": "wide.mp4", "caption": "a wide clip"})
        + "\n"
        + json.dumps({"file": "sub/tall.mp4", "caption": "a tall clip"})
        + "\n"
    )
    _clip(tmp_path / "short.mp4", 4, 64, 64)  # too short for 8 frames
    _clip(tmp_path / "panorama.mp4", 20, 16, 160)  # 10:1: no bucket
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not really a video")
    (tmp_path / "notes.md").write_text("ignored: not a video suffix")
    return tmp_path


def test_usable_videos_are_loaded_and_bad_ones_summarised(footage):
    with pytest.warns(UserWarning, match=r"using 3 of 6 videos, skipped 3") as record:
        ds = FolderDataset(FolderConfig(root=str(footage), num_frames=8, area=64 * 64))
    message = str(record[0].message)
    assert (
        "broken.mp4" in message
        and "short.mp4: too short" in message
        and "panorama.mp4: aspect ratio" in message
    )
    by_name = {item.path.name: item for item in ds.items}
    assert by_name["square.webm"].caption == "a square clip"  # sidecar
    assert by_name["wide.mp4"].caption == "a wide clip"  # captions.jsonl
    assert by_name["tall.mp4"].caption == "a tall clip"  # captions.jsonl, by relative path
    for i, item in enumerate(ds.items):
        sample = ds[i]
        assert sample["video"].shape == (3, 8, item.bucket.height, item.bucket.width)
        assert (
            sample["video"].dtype == torch.float32
            and -1 <= sample["video"].min() <= sample["video"].max() <= 1
        )


def test_bucketed_batches_stack_with_workers(footage):
    with pytest.warns(UserWarning):
        ds = FolderDataset(FolderConfig(root=str(footage), num_frames=8, area=64 * 64))
    sampler = BucketBatchSampler(ds.item_buckets, batch_size=2)
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=2, collate_fn=collate_clips)
    shapes = {tuple(batch["video"].shape[-2:]) for batch in loader}
    assert len(shapes) == 3  # three aspect ratios, three buckets


def test_clip_starts_are_deterministic_per_epoch(footage):
    with pytest.warns(UserWarning):
        ds = FolderDataset(FolderConfig(root=str(footage), num_frames=8, area=64 * 64, seed=3))
    wide = next(i for i, it in enumerate(ds.items) if it.path.name == "wide.mp4")
    first = ds[wide]["video"]
    assert torch.equal(first, ds[wide]["video"])
    starts = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        starts.add(ds[wide]["video"][:, 0].sum().item())
    assert len(starts) > 1  # different epochs draw different windows of the 40-frame video


def test_folder_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        FolderDataset(FolderConfig(root=str(tmp_path / "missing")))
    with pytest.raises(ValueError, match="no usable videos"):
        FolderDataset(FolderConfig(root=str(tmp_path)))
    (tmp_path / "captions.jsonl").write_text("{not json}\n")
    _clip(tmp_path / "a.mp4", 20, 64, 64)
    with pytest.raises(ValueError, match=r"captions.jsonl:1: expected a JSON object"):
        FolderDataset(FolderConfig(root=str(tmp_path), num_frames=8))
    with pytest.raises(ValueError, match="unknown dataset"):
        build_dataset("imagenet")


@pytest.fixture
def mixed_folder(tmp_path):
    """Two 16:9 and two 4:3 clips, captioned: batches only stack within a bucket."""
    for k in range(2):
        _clip(tmp_path / f"wide{k}.mp4", 24, 72, 128)
        _clip(tmp_path / f"classic{k}.mp4", 24, 96, 128)
        (tmp_path / f"wide{k}.txt").write_text("a wide clip\n")
        (tmp_path / f"classic{k}.txt").write_text("a classic clip\n")
    return tmp_path


def test_step_batches_come_from_one_bucket_split_across_ranks_and_redraw_each_epoch(mixed_folder):
    from filmstrip.data.join import JoinedDataset, item_groups, varies_by_epoch
    from filmstrip.train.trainer import StepBatchSampler

    ds = FolderDataset(FolderConfig(root=str(mixed_folder), num_frames=5, area=64 * 64, clips_per_video=3))
    groups = item_groups(ds)
    assert len(set(groups)) == 2 and varies_by_epoch(ds)
    ranks = [
        StepBatchSampler(len(ds), 4, 0, 0, rank=r, world=2, groups=groups, with_epoch=True) for r in (0, 1)
    ]
    epochs = set()
    for step in range(12):
        a, b = ranks[0].batch(step), ranks[1].batch(step)
        assert len({groups[i] for i, _ in a + b}) == 1  # the global batch shares a bucket
        assert not {i for i, _ in a} & {i for i, _ in b}  # each rank its own half
        epochs |= {e for _, e in a + b}
    assert epochs == set(range(6))  # 2 full batches per epoch (6 clips per bucket, batch 4)
    # The same clip drawn in another epoch starts elsewhere in its video.
    assert not torch.equal(ds[(0, 0)]["video"], ds[(0, 1)]["video"])
    assert torch.equal(ds[(0, 1)]["video"], ds[(0, 1)]["video"])
    # Joined with a fixed-size dataset, each part keeps its own groups.
    joined = JoinedDataset([ds, build_dataset("shapes", num_frames=5, height=32, width=32)])
    assert len(set(item_groups(joined))) == 3 and joined[(1, 2)]["video"].shape[-1] in (64, 80)
    with pytest.raises(ValueError, match="full batch of 8"):
        StepBatchSampler(len(ds), 8, 0, 0, groups=groups)


def test_resampled_draws_a_fresh_slice_each_epoch_without_repeats():
    from filmstrip.data.join import JoinedDataset, Resampled, item_groups, varies_by_epoch

    source = [{"i": i} for i in range(50)]
    view = Resampled(source, 8, seed=3)
    assert len(view) == 8 and varies_by_epoch(view)
    epochs = [[view[(i, e)]["i"] for i in range(8)] for e in range(3)]
    assert all(len(set(items)) == 8 for items in epochs)  # no repeats within an epoch
    assert epochs[0] != epochs[1] != epochs[2]  # a new slice each epoch
    assert epochs[1] == [Resampled(source, 8, seed=3)[(i, 1)]["i"] for i in range(8)]  # a pure function
    joined = JoinedDataset([source[:4], view])
    assert item_groups(joined) == [(0,)] * 4 + [(1,)] * 8 and joined[(5, 2)] == view[(1, 2)]
    with pytest.raises(ValueError, match="cannot draw 60 items per epoch"):
        Resampled(source, 60)


def test_training_on_a_folder_of_mixed_aspect_ratios(mixed_folder, tmp_path):
    """`vae train` and `train t2v` on 16:9 and 4:3 footage without --crop: batches stack
    because each comes from one bucket (this used to fail in torch.stack)."""
    from click.testing import CliRunner

    from filmstrip.cli import main
    from filmstrip.data.latents import LatentDataset

    data = f"folder:{mixed_folder}"
    common = ["--size", "64", "--frames", "5", "--batch-size", "2", "--steps", "2", "--workers", "0"]
    common += ["--sample-every", "0", "--ckpt-every", "0"]
    vae = CliRunner().invoke(
        main, ["vae", "train", "--preset", "tiny", "--data", data, "--run", str(tmp_path / "v"), *common]
    )
    assert vae.exit_code == 0, vae.output
    t2v = CliRunner().invoke(
        main,
        [
            "train",
            "t2v",
            "--preset",
            "tiny",
            "--data",
            data,
            "--clips",
            "8",
            "--run",
            str(tmp_path / "t"),
            *common,
        ],
    )
    assert t2v.exit_code == 0, t2v.output
    cache = LatentDataset(tmp_path / "t" / "latents")
    assert {tuple(cache[i]["latents"].shape[-2:]) for i in range(len(cache))} == {(6, 8), (6, 10)}
    assert len(set(cache.item_groups())) == 2


def test_mirrored_clips_flip_the_picture_and_swap_left_and_right(mixed_folder):
    from filmstrip.data.join import item_groups
    from filmstrip.data.mirror import Mirrored, mirror_caption

    assert mirror_caption("A red square moves Left, then right; leftwards") == (
        "A red square moves Right, then left; rightwards"
    )
    assert mirror_caption("a bright light") == "a bright light"  # words only, not parts of words
    ds = FolderDataset(FolderConfig(root=str(mixed_folder), num_frames=5, area=64 * 64))
    view = Mirrored(ds)
    assert len(view) == 2 * len(ds) and item_groups(view) == [g for g in item_groups(ds) for _ in range(2)]
    a, b = view[(2, 1)], view[(3, 1)]  # clip 1 and its mirror, as drawn in epoch 1
    assert torch.equal(a["video"], ds[(1, 1)]["video"]) and torch.equal(b["video"], a["video"].flip(-1))
    assert b["caption"] == mirror_caption(a["caption"])


def test_focus_masks_ride_with_their_clips(mixed_folder):
    """A `clip.mask.mp4` beside a clip is read with the clip's own start, size and crop (here
    the mask is the clip itself, so the two must agree pixel for pixel), flipped with its
    mirror, never taken for a clip; a mask that does not fit its clip is a named skip, and a
    clip without one is a clip like any other."""
    from filmstrip.data.mirror import Mirrored

    _clip(mixed_folder / "wide1.mask.mp4", 24, 72, 128)  # the same picture as the clip
    _clip(mixed_folder / "classic0.mask.mp4", 24, 64, 64)  # not its clip's size
    with pytest.warns(UserWarning, match=r"using 3 of 4 videos") as record:
        ds = FolderDataset(FolderConfig(root=str(mixed_folder), num_frames=5, area=64 * 64))
    assert "classic0.mp4: its mask classic0.mask.mp4 is 24 frames of 64x64" in str(record[0].message)
    by_name = {item.path.name: i for i, item in enumerate(ds.items)}
    assert set(by_name) == {"wide0.mp4", "wide1.mp4", "classic1.mp4"}
    item = ds[(by_name["wide1.mp4"], 3)]  # a random start of epoch 3
    grey = (item["video"].mean(dim=0, keepdim=True) + 1) / 2
    assert item["focus"].shape == (1, *item["video"].shape[1:])
    torch.testing.assert_close(item["focus"], grey, rtol=0, atol=1e-6)
    assert "focus" not in ds[by_name["wide0.mp4"]]
    # A batch of clips with and without masks still collates (as `vae train` batches them).
    batch = collate_clips([ds[by_name["wide0.mp4"]], item])
    assert batch["focus"][0] is None and torch.equal(batch["focus"][1], item["focus"])
    view = Mirrored(ds)
    mirror = view[(2 * by_name["wide1.mp4"] + 1, 3)]
    assert torch.equal(mirror["focus"], item["focus"].flip(-1))


def test_text_to_video_training_names_the_videos_without_a_caption(footage):
    """A video with no caption is learned as a dropped caption: training data that lacks them
    is named before the run, and a fully captioned folder says nothing."""
    import warnings

    from filmstrip.errors import FilmstripWarning
    from filmstrip.train.recipes import ClipData, t2v_dataset

    data = ClipData(source=f"folder:{footage}", frames=8, size=64, clips=100)
    (footage / "captions.jsonl").write_text(json.dumps({"file": "sub/tall.mp4", "caption": "a tall clip"}))
    with pytest.warns(FilmstripWarning, match=r"1 of 3 videos have no caption \(e.g. wide.mp4\)"):
        t2v_dataset(data, seed=0)
    (footage / "wide.txt").write_text("a wide clip")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        t2v_dataset(data, seed=0)
    assert not [w for w in said if "no caption" in str(w.message)]


def test_real_footage_through_the_toy_autoencoder_is_said():
    import warnings

    from filmstrip.errors import FilmstripWarning
    from filmstrip.train.recipes import warn_toy_vae

    for vae in (None, "vae3d", "vae2d"):
        with pytest.warns(FilmstripWarning, match="learned shapes and digits only .* give --vae vae_natural"):
            warn_toy_vae("folder:/clips", vae)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_toy_vae("folder:/clips", "vae_natural")
        warn_toy_vae("shapes", None)
