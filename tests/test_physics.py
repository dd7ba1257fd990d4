"""The physics probe: real `shapes` clips pass, and each planted violation fails its own part."""

from dataclasses import replace

import numpy as np
import pytest

from filmstrip.data.shapes import Scene, ShapeObject, ShapesConfig, ShapesDataset, object_paths, render
from filmstrip.eval.adherence import segment
from filmstrip.eval.physics import PARTS, probe, summarise

CFG = ShapesConfig(num_frames=17, background="plain")
MOVER = ShapeObject("circle", "blue", "small", (0.3, 0.4), "right", 0.15)
STILL = ShapeObject("square", "yellow", "small", (0.7, 0.75), "still", 0.0)


def _scene(*objects: ShapeObject) -> Scene:
    return Scene(objects=objects, background="plain", background_level=30, texture_seed=0)


def _spliced(after: Scene, at: int = 8) -> np.ndarray:
    """The two-object scene up to frame `at`, then `after` (rendered from t = 0 or aligned)."""
    frames = render(_scene(MOVER, STILL), CFG)
    frames[at:] = render(after, CFG)[at:]
    return frames


def _failed(frames: np.ndarray) -> set[str]:
    s = probe(frames)
    return {p for p in PARTS if s.parts[p] < 1.0}


def test_real_clips_pass():
    data = ShapesDataset(replace(CFG, background="mixed", num_clips=60, seed=3))
    scores = [probe(render(data.scene(i), data.cfg)) for i in range(len(data))]
    summary = summarise(scores)
    assert summary["passed"] >= 0.98 and summary["score"] >= 0.995
    clean = probe(render(_scene(MOVER, STILL), CFG))
    assert clean.passed and clean.score == 1.0 and set(clean.objects) == {"blue", "yellow"}


def test_an_object_that_vanishes_fails_permanence():
    assert _failed(_spliced(_scene(STILL))) == {"permanence"}


def test_an_object_that_jumps_fails_speed():
    jumped = replace(MOVER, start=(0.3, 0.6))
    assert _failed(_spliced(_scene(jumped, STILL))) == {"speed"}


def test_an_object_that_turns_in_mid_air_fails_reflection():
    x8 = object_paths(_scene(MOVER), CFG)[0][0][8] / [CFG.width, CFG.height]  # where it is at frame 8
    back = replace(MOVER, start=tuple(x8), direction="left")
    frames = render(_scene(MOVER, STILL), CFG)
    frames[8:] = render(_scene(back, STILL), CFG)[: CFG.num_frames - 8]
    assert _failed(frames) == {"reflection"}


def test_an_object_that_grows_fails_size():
    grown = replace(MOVER, size="large")
    assert "size" in _failed(_spliced(_scene(grown, STILL)))


def test_an_object_whose_colour_drifts_fails_colour():
    frames = render(_scene(MOVER, STILL), CFG).astype(np.int16)
    for t in range(8, CFG.num_frames):
        blue = segment(frames[t].astype(np.uint8)) == 5  # still blue to the segmenter
        frames[t][blue] += np.array([40, 30, 0], dtype=np.int16)
    assert _failed(np.clip(frames, 0, 255).astype(np.uint8)) == {"colour"}


def test_an_object_that_splits_fails_no_split():
    # A small piece (37% of the large object's area) breaks off and stays behind.
    large = replace(MOVER, size="large", start=(0.3, 0.6))
    piece = replace(MOVER, start=(0.3, 0.2), direction="still", speed=0.0)
    frames = render(_scene(large, STILL), CFG)
    frames[8:] = render(_scene(large, piece, STILL), CFG)[8:]
    assert _failed(frames) == {"no_split"}


@pytest.mark.parametrize("frames", [np.zeros((17, 64, 64, 3), np.uint8)])
def test_an_empty_clip_passes_vacuously(frames):
    s = probe(frames)
    assert s.passed and s.objects == {}
