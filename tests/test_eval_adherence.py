"""The prompt-adherence evaluator must score real `shapes` clips ~100% and catch errors."""

import cv2
import numpy as np
import pytest
import torch

from filmstrip.data import ShapesConfig, ShapesDataset
from filmstrip.eval.adherence import detect, score


@pytest.fixture(scope="module")
def clips():
    ds = ShapesDataset(ShapesConfig(num_frames=17, seed=123))
    return [ds[i] for i in range(60)]


def test_scores_real_clips_near_perfectly(clips):
    scores = [score(c["video"], c["truth"]) for c in clips]
    mean = {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}
    assert mean["colour"] == 1.0 and mean["count"] == 1.0
    assert mean["shape"] >= 0.97 and mean["direction"] >= 0.97 and mean["consistency"] >= 0.95


def test_catches_wrong_colour_direction_and_extra_objects(clips):
    clip = next(
        c
        for c in clips
        if len(c["truth"]["objects"]) == 1
        and c["truth"]["objects"][0]["direction"] != "still"
        and not c["truth"]["objects"][0]["bounced"]  # reversed, a bounce would undo itself
    )
    video, truth = clip["video"], clip["truth"]
    assert score(video, truth) == {
        "colour": 1.0,
        "shape": 1.0,
        "direction": 1.0,
        "count": 1.0,
        "consistency": pytest.approx(1.0, abs=0.07),
        "swapped": 0.0,
    }
    # Played backwards, the object moves the opposite way.
    assert score(video.flip(1), truth)["direction"] == 0.0
    # Frozen on its first frame, it does not move at all.
    frozen = video[:, :1].expand_as(video)
    assert detect(frozen)[0].direction == "still"
    # Another colour asked for: not found, and the count is wrong.
    wrong = {
        "objects": [
            {**truth["objects"][0], "colour": "blue" if truth["objects"][0]["colour"] != "blue" else "red"}
        ]
    }
    assert score(video, wrong)["colour"] == 0.0 and score(video, wrong)["count"] == 0.0
    # A blank video finds nothing.
    assert score(torch.full_like(video, -0.8), truth)["colour"] == 0.0


def test_swapped_counts_objects_that_take_another_objects_direction(clips):
    """Two objects asked to move each other's way: the real clip scores 0 direction, and every
    miss is a swap (a binding error), not a wrong or missing motion."""
    clip = next(
        c
        for c in clips
        if len(objs := c["truth"]["objects"]) == 2
        and objs[0]["direction"] != objs[1]["direction"]
        and score(c["video"], c["truth"])["direction"] == 1.0
    )
    truth = clip["truth"]
    a, b = truth["objects"]
    exchanged = {**truth, "objects": [{**a, "direction": b["direction"]}, {**b, "direction": a["direction"]}]}
    assert score(clip["video"], truth)["swapped"] == 0.0
    assert score(clip["video"], exchanged)["direction"] == 0.0
    assert score(clip["video"], exchanged)["swapped"] == 1.0


def _blurred(video: torch.Tensor, sigma: float) -> torch.Tensor:
    """Each frame through a Gaussian blur, the way a VAE decoder softens edges."""
    c, t, h, w = video.shape
    frames = video.permute(1, 2, 3, 0).numpy()
    out = np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in frames])
    return torch.from_numpy(out).permute(3, 0, 1, 2)


def test_shapes_survive_blur_and_a_wrong_shape_is_caught(clips):
    # Blur rounds a square's corners and a triangle's tip; the shape features must not care.
    scores = [score(_blurred(c["video"], 1.5), c["truth"]) for c in clips[:30]]
    assert np.mean([s["shape"] for s in scores]) >= 0.95
    assert np.mean([s["colour"] for s in scores]) == 1.0
    clip = clips[0]
    swap = {"circle": "square", "square": "triangle", "triangle": "circle"}
    wrong = {"objects": [{**o, "shape": swap[o["shape"]]} for o in clip["truth"]["objects"]]}
    assert score(clip["video"], wrong)["shape"] == 0.0


def test_coverage_centres_find_objects_to_a_fraction_of_a_pixel(clips):
    """On rendered clips, whose every centre is known, the coverage-weighted centre is several
    times closer to it than the thresholded blob's plain centroid (objects in full view)."""
    from filmstrip.data.shapes import in_full_view
    from filmstrip.eval.adherence import AdherenceConfig

    errors = {False: [], True: []}
    for clip in clips[:20]:
        truth = clip["truth"]
        clear = in_full_view(truth, 64, 64)
        for subpixel in errors:
            found = {
                d.colour: d.track for d in detect(clip["video"], 8.0, AdherenceConfig(subpixel=subpixel))
            }
            for obj, visible in zip(truth["objects"], clear, strict=True):
                for t, (x, y) in enumerate(obj["positions"]):
                    point = found.get(obj["colour"], [None] * 17)[t]
                    if visible[t] and point is not None:  # pixel centres sit at i + 0.5
                        errors[subpixel].append(np.hypot(point[0] - x + 0.5, point[1] - y + 0.5))
    plain, weighted = np.mean(errors[False]), np.mean(errors[True])
    assert len(errors[True]) > 300
    assert weighted < 0.05 and weighted < plain / 3


def test_stars_are_told_by_their_outline_drawn_and_blurred():
    """The five-fold harmonic of the outline reads large stars as stars, drawn or blurred
    (blur eats their tips, as a decoder does), and never a circle, square or triangle, even
    one partly hidden by another object. (Stars hidden on every frame are left out: nothing
    on screen shows their points.)"""
    from filmstrip.data.shapes import in_full_view
    from filmstrip.eval.adherence import AdherenceConfig

    judge = AdherenceConfig(shapes=("circle", "square", "triangle", "star"))
    ds = ShapesDataset(ShapesConfig(num_frames=17, seed=7, shapes=judge.shapes, sizes=("large",)))
    clips = [ds[i] for i in range(60)]
    for sigma in (0.0, 1.0):
        read = {}  # true shape -> shapes read
        for clip in clips:
            video = _blurred(clip["video"], sigma) if sigma else clip["video"]
            found = {d.colour: d.shape for d in detect(video, 8.0, judge)}
            clear = in_full_view(clip["truth"], 64, 64).sum(axis=1)
            for obj, frames in zip(clip["truth"]["objects"], clear, strict=True):
                if obj["colour"] in found and (obj["shape"] != "star" or frames >= 4):
                    read.setdefault(obj["shape"], []).append(found[obj["colour"]])
        assert len(read["star"]) >= 15 and np.mean([s == "star" for s in read["star"]]) >= 0.95, sigma
        others = [s for shape in ("circle", "square", "triangle") for s in read[shape]]
        assert len(others) >= 30 and "star" not in others, sigma


def test_coverage_falls_back_to_the_blob_on_a_background_like_the_object():
    from filmstrip.eval.adherence import coverage, coverage_centre, outline_harmonics

    frame = np.zeros((16, 16, 3), np.uint8)
    frame[:] = (225, 35, 35)  # the palette's red, background and all: nothing to tell apart
    blob = np.zeros((16, 16), bool)
    blob[4:8, 4:9] = True
    labels = np.where(blob, 0, -1)
    cover = coverage(frame, labels, 0, blob)
    assert (cover == blob).all() and coverage_centre(cover) == (6.0, 5.5)
    assert np.isfinite(outline_harmonics(cover)).all()
