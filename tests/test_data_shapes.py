"""The shapes dataset: determinism, ground truth that matches the pixels, truthful captions."""

import dataclasses
import re

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from filmstrip.data.motion import _DIRECTION_PHRASES, DIRECTIONS
from filmstrip.data.shapes import (
    _REGION_PHRASES,
    COLOURS,
    Scene,
    ShapesConfig,
    ShapesDataset,
    caption,
    collate_clips,
    ground_truth,
    render,
    start_region,
)

CFG = ShapesConfig(num_frames=12, height=48, width=64, num_clips=64)


def test_same_seed_same_clip_and_different_seed_different_clip():
    a, b = ShapesDataset(CFG)[5], ShapesDataset(CFG)[5]
    assert torch.equal(a["video"], b["video"]) and a["caption"] == b["caption"] and a["truth"] == b["truth"]
    c = ShapesDataset(dataclasses.replace(CFG, seed=1))[5]
    assert not torch.equal(a["video"], c["video"])


def test_dataloader_workers_give_the_same_clips_as_direct_indexing():
    ds = ShapesDataset(CFG)
    loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate_clips)
    batch = next(iter(loader))
    assert batch["video"].shape == (4, 3, 12, 48, 64)
    assert batch["video"].min() >= -1.0 and batch["video"].max() <= 1.0
    for k in range(4):
        assert torch.equal(batch["video"][k], ds[k]["video"])
        assert batch["caption"][k] == ds[k]["caption"]


def _alpha_centroids(scene: Scene, cfg: ShapesConfig) -> np.ndarray:
    """Per frame, the coverage-weighted centre of the single object in `scene` (plain background)."""
    frames = render(scene, cfg).astype(np.float64)
    bg = float(scene.background_level)
    colour = np.array(COLOURS[scene.objects[0].colour], np.float64)
    alpha = np.clip(((frames - bg) * (colour - bg)).sum(-1) / ((colour - bg) ** 2).sum(), 0, 1)  # (T, H, W)
    yy, xx = np.mgrid[0 : cfg.height, 0 : cfg.width] + 0.5
    mass = alpha.sum((1, 2))
    return np.stack([(alpha * xx).sum((1, 2)) / mass, (alpha * yy).sum((1, 2)) / mass], -1)


@pytest.mark.parametrize("index", range(12))
def test_ground_truth_positions_match_rendered_pixels(index):
    ds = ShapesDataset(CFG)
    scene = ds.scene(index)
    for obj, truth in zip(scene.objects, ground_truth(scene, CFG)["objects"], strict=True):
        alone = dataclasses.replace(scene, objects=(obj,), background="plain")
        measured = _alpha_centroids(alone, CFG)
        assert np.abs(measured - np.array(truth["positions"])).max() < 0.35, (obj, index)


def test_motion_is_constant_velocity_until_a_bounce():
    for i in range(40):
        truth = ShapesDataset(CFG)[i]["truth"]
        for obj in truth["objects"]:
            steps = np.diff(np.array(obj["positions"]), axis=0)
            if not obj["bounced"]:
                assert np.allclose(steps, steps[0], atol=1e-2)
                dx, dy = DIRECTIONS[obj["direction"]]
                speed_px = obj["speed"] * CFG.width / CFG.fps
                assert np.allclose(steps[0], [dx * speed_px, dy * speed_px], atol=1e-2)


def test_caption_names_every_object_truthfully():
    ds = ShapesDataset(CFG)
    for i in range(60):
        item = ds[i]
        text = item["caption"]
        for obj in item["truth"]["objects"]:
            assert f"{obj['colour']} {obj['shape']}" in text
            if obj["direction"] != "still":
                assert any(p in text for p in _DIRECTION_PHRASES[obj["direction"]])
        any_bounce = any(o["bounced"] for o in item["truth"]["objects"])
        assert ("bounce" in text) == any_bounce


def test_same_scene_renders_the_same_motion_at_any_size_and_rate():
    ds = ShapesDataset(CFG)
    scene = ds.scene(3)
    big = dataclasses.replace(CFG, height=96, width=128)
    small_truth = np.array(ground_truth(scene, CFG)["objects"][0]["positions"]) / [CFG.width, CFG.height]
    big_truth = np.array(ground_truth(scene, big)["objects"][0]["positions"]) / [big.width, big.height]
    # The shape's extent in normalised units changes a little with the pixel grid only near walls.
    assert np.abs(small_truth - big_truth).max() < 0.02
    assert caption(scene, CFG) == caption(scene, big)


def test_clip_colours_are_distinct_and_there_are_eight_or_more():
    assert len(COLOURS) >= 8
    ds = ShapesDataset(CFG)
    for i in range(30):
        colours = [o["colour"] for o in ds[i]["truth"]["objects"]]
        assert len(colours) == len(set(colours))


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="background"):
        ShapesConfig(background="stars")
    with pytest.raises(ValueError, match="min_objects"):
        ShapesConfig(min_objects=3, max_objects=2)
    with pytest.raises(IndexError):
        ShapesDataset(CFG)[CFG.num_clips]


def test_held_out_combinations_never_appear():
    held = (("green", "triangle", "up"), ("red", "*", "left"))
    ds = ShapesDataset(ShapesConfig(num_frames=2, height=16, width=16, held_out=held, num_clips=400))
    seen = [(o.colour, o.shape, o.direction) for i in range(len(ds)) for o in ds.scene(i).objects]
    assert not any(c == ("green", "triangle", "up") or (c[0] == "red" and c[2] == "left") for c in seen)
    # The parts still appear, only not together.
    assert any(c[0] == "green" and c[1] == "triangle" for c in seen)
    assert any(c[1] == "triangle" and c[2] == "up" for c in seen)
    assert any(c[0] == "red" and c[2] == "right" for c in seen)
    with pytest.raises(ValueError, match="leaves no shape"):
        ShapesDataset(
            ShapesConfig(held_out=(("red", "*", "*"),), min_objects=9, max_objects=9, still_probability=0)
        )[0]


def test_start_region_reads_thirds_of_the_start_range():
    assert start_region((0.25, 0.25)) == "top left"
    assert start_region((0.5, 0.5)) == "centre"
    assert start_region((0.7, 0.5)) == "right"
    assert start_region((0.5, 0.75)) == "bottom"
    assert start_region((0.3, 0.79)) == "bottom left"


def test_start_words_insert_where_each_object_starts_and_nothing_else():
    told_cfg = dataclasses.replace(CFG, start_words=1.0)
    ds = ShapesDataset(CFG)
    phrases = {
        region: [f"{lead}{p}" for p in options for lead in ("", "starting ")]
        for region, options in _REGION_PHRASES.items()
    }
    every = sorted({p for ps in phrases.values() for p in ps}, key=len, reverse=True)
    for i in range(40):
        scene = ds.scene(i)
        told = caption(scene, told_cfg)
        for obj in scene.objects:
            after = told.split(f"{obj.colour} {obj.shape} ", 1)[1]
            said = [p for p in every if after.startswith(p + " ")]
            assert said and said[0] in phrases[start_region(obj.start)], (told, obj.start)
        # Taking the start phrases out gives back the caption without them, word for word.
        stripped = re.sub(r" (" + "|".join(map(re.escape, every)) + r")(?= )", "", told)
        assert stripped == caption(scene, CFG)
    half = dataclasses.replace(CFG, start_words=0.5)
    told_share = np.mean([caption(ds.scene(i), half) != caption(ds.scene(i), CFG) for i in range(len(ds))])
    assert 0.5 < told_share < 0.95  # 1 - 0.5^objects for 1-3 objects


def test_in_full_view_is_false_exactly_where_objects_touch():
    from filmstrip.data.shapes import in_full_view

    def obj(shape, xs):
        return {"shape": shape, "radius_px": 5.0, "positions": [[x, 32.0] for x in xs]}

    # A circle of radius 5 at x = 20 and a square sliding in from the right: apart, then
    # on the next pixel, then overlapping. A third object far away is always clear.
    truth = {"objects": [obj("circle", [20, 20, 20]), obj("square", [40, 29.5, 27]),
                         {**obj("triangle", [55, 55, 55]), "positions": [[55, 5]] * 3}]}  # fmt: skip
    clear = in_full_view(truth, 64, 64, margin_px=1)
    assert clear.tolist() == [[True, False, False], [True, False, False], [True, True, True]]
    assert in_full_view(truth, 64, 64, margin_px=0)[:2, 1].tolist() == [True, True]


def test_caption_words_hold_every_word_a_caption_can_have():
    """`caption_words` is the vocabulary a `shapes` model reads (generate warns on others):
    captions of every kind (start words, backgrounds, sizes, three objects, the star, camera
    clips) use no other word."""
    from filmstrip.data.motion import words_of
    from filmstrip.data.shapes import caption_words

    vocabulary = caption_words()
    for cfg in (
        ShapesConfig(num_clips=400, num_frames=2, start_words=1.0, background="mixed"),
        ShapesConfig(
            num_clips=300,
            num_frames=2,
            min_objects=3,
            max_objects=3,
            shapes=("circle", "square", "triangle", "star"),
            camera=1.0,
        ),
    ):
        data = ShapesDataset(cfg)
        for i in range(len(data)):
            assert set(words_of(data[i]["caption"])) <= vocabulary, data[i]["caption"]
    assert {"cat", "runs", "beach"}.isdisjoint(vocabulary) and {"red", "star", "diagonally"} <= vocabulary
