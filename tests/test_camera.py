"""Camera paths (data/camera.py) in `shapes`: the rendered background moves by the path,
objects stay in the picture and keep their own motion, paths from JSON are checked, and a
camera-conditioned model reads the path."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from filmstrip.data import ShapesConfig, ShapesDataset
from filmstrip.data.camera import (
    PAN_UNIT,
    PRESETS,
    ZOOM_UNIT,
    CameraPath,
    camera_features,
    preset_path,
    random_path,
    read_path,
)
from filmstrip.data.latents import LatentDataset, build_latent_cache, collate_latents
from filmstrip.data.shapes import render, screen_paths, truth_masks
from filmstrip.errors import InputError
from filmstrip.eval.adherence import detect
from filmstrip.eval.camera import (
    CameraSuiteConfig,
    estimate_path,
    path_errors,
    run_camera_suite,
    world_direction,
)
from filmstrip.eval.structure import mask_iou
from filmstrip.io.layout import to_float_cthw
from filmstrip.models.dit import VideoDiT
from filmstrip.pipelines.generate import GenerateConfig, generate, load_pipeline

CFG = ShapesConfig(num_frames=17, num_clips=12, background="textured", seed=11)


@pytest.mark.parametrize("name", [p for p in PRESETS] + ["random"])
def test_the_rendered_background_moves_by_the_path(name):
    path = preset_path(name, 17, 8.0) if name != "random" else random_path(np.random.default_rng(5), 17, 8.0)
    scene = replace(ShapesDataset(CFG).scene(2), camera=path)
    errors = path_errors(estimate_path(to_float_cthw(render(scene, CFG))), path, 64)
    # Read back from the pixels alone, within a fifth of a pixel per frame.
    assert errors["px_per_frame"] < 0.2 and errors["scale_per_frame"] < 0.004, errors


def test_presets_move_the_way_they_say():
    end = {name: preset_path(name, 17, 8.0).as_array()[-1] for name in PRESETS}
    assert end["pan-left"][0] < 0 < end["pan-right"][0] and end["pan-up"][1] < 0 < end["pan-down"][1]
    assert end["zoom-in"][2] > 1 > end["zoom-out"][2] and tuple(end["static"]) == (0, 0, 1)
    feats = camera_features(preset_path("zoom-in", 17, 8.0).as_array())
    assert feats[0].tolist() == [0, 0, 0] and feats[-1, 2] == pytest.approx(1.0)  # x1.4 over 2 s
    assert camera_features(np.array([[PAN_UNIT, -PAN_UNIT, ZOOM_UNIT]])).tolist() == [[1, -1, 1]]


def test_objects_stay_in_view_and_keep_their_own_motion():
    cfg = replace(CFG, camera=1.0, num_clips=30, still_probability=0.0)
    ds = ShapesDataset(cfg)
    right = total = 0
    for i in range(30):
        scene = ds.scene(i)
        assert scene.camera is not None and scene.background == "textured"
        for xy in screen_paths(scene, cfg):
            assert (xy > 0).all() and (xy < 64).all()  # the centre never leaves the frame
        item = ds[i]
        assert item["truth"]["camera"] == scene.camera.to_json()
        # The evaluator's screen tracks, with the camera taken out, move the caption's way.
        found = {d.colour: d for d in detect(item["video"], cfg.fps)}
        for o in item["truth"]["objects"]:
            if o["colour"] in found:
                total += 1
                right += (
                    world_direction(found[o["colour"]].track, scene.camera, 64, cfg.fps) == o["direction"]
                )
        # Masks drawn from the truth follow the zoom (0.93-1 over a strong moving texture).
        assert mask_iou(item["video"], truth_masks(item["truth"], 64, 64)) > 0.9
    assert right / total > 0.9, (right, total)
    assert not any(ShapesDataset(CFG).scene(i).camera for i in range(12))  # camera = 0: none


def test_camera_json_is_checked_with_one_sentence(tmp_path):
    good = preset_path("pan-right", 5, 8.0)
    (tmp_path / "good.json").write_text(json.dumps(good.to_json()))
    assert read_path(tmp_path / "good.json", 5) == good
    (tmp_path / "rows.json").write_text(json.dumps([[0, 0, 1]] * 5))
    assert read_path(tmp_path / "rows.json", 5).scale == (1.0,) * 5
    cases = {
        "missing": (None, "no such camera path file"),
        "text": ("not json", "not JSON"),
        "object": ({"x": 0}, "a JSON list"),
        "keys": ([{"x": 0, "y": 0}] * 5, "frame 0 lacks scale"),
        "shape": ([[0, 0]] * 5, "neither"),
        "number": ([[0, "a", 1]] * 5, "not a number"),
        "length": ([[0, 0, 1]] * 3, "3 camera entries for a video of 5 frames"),
        "zoom": ([[0, 0, 1]] * 4 + [[0, 0, 9]], "zoom must stay in"),
        "far": ([[0, 0, 1]] * 4 + [[0.9, 0, 1]], "at most half a frame"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / f"{name}.json"
        if content is not None:
            path.write_text(content if isinstance(content, str) else json.dumps(content))
        with pytest.raises(InputError, match=message):
            read_path(path, 5)
    with pytest.raises(InputError, match="unknown camera preset"):
        preset_path("dolly", 5, 8.0)
    with pytest.raises(InputError, match="NaN"):
        CameraPath((0, math.nan), (0, 0), (1, 1))


def test_generate_names_the_presets_when_camera_is_neither_one_nor_a_file(tmp_path):
    from click.testing import CliRunner

    from filmstrip.cli import main

    out = CliRunner().invoke(main, ["generate", "x", "--camera", "dolly", "-o", str(tmp_path / "x.mp4")])
    assert out.exit_code == 1 and "--camera dolly: neither a preset (pan-left, " in out.output
    assert "nor a path.json file" in out.output and not (tmp_path / "x.mp4").exists()


def test_the_cache_gives_each_clip_its_camera(tmp_path, tiny_vae, text_encoder):
    cfg = ShapesConfig(num_frames=5, height=32, width=32, num_clips=6, camera=0.5, seed=1)
    ds = ShapesDataset(cfg)
    cache = LatentDataset(build_latent_cache(ds, tiny_vae, text_encoder, tmp_path / "c", num_clips=6))
    for i in range(6):
        scene = ds.scene(i)
        want = camera_features(scene.camera.as_array()) if scene.camera else np.zeros((5, 3))
        np.testing.assert_allclose(cache[i]["camera"].numpy(), want, atol=1e-5)
    assert collate_latents([cache[0], cache[1]])["camera"].shape == (2, 5, 3)


def test_generate_reads_the_camera_path_and_refuses_a_model_without_one(tiny_bundle):
    pipe = load_pipeline(tiny_bundle)
    gen = GenerateConfig(frames=5, height=32, width=32, steps=2)
    with pytest.raises(InputError, match="not trained with a camera condition"):
        generate(pipe, ["a red circle"], gen, camera=preset_path("pan-left", 5, 8.0))
    dit = VideoDiT(replace(pipe.dit.cfg, vectors=(("camera", 3),)))
    dit.load_state_dict(pipe.dit.state_dict(), strict=False)
    with torch.no_grad():
        for p in dit.vector_embed.parameters():
            p.add_(torch.randn_like(p))
    pipe = replace(pipe, dit=dit.eval())
    left = generate(pipe, ["a red circle"], gen, camera=preset_path("pan-left", 5, 8.0))
    right = generate(pipe, ["a red circle"], gen, camera=preset_path("pan-right", 5, 8.0))
    assert not torch.allclose(left, right)
    with pytest.raises(InputError, match="one entry per frame"):
        generate(pipe, ["a red circle"], gen, camera=preset_path("pan-left", 9, 8.0))


def test_camera_suite_measures_every_path(tiny_bundle):
    pipe = load_pipeline(tiny_bundle)
    dit = VideoDiT(replace(pipe.dit.cfg, vectors=(("camera", 3),)))
    dit.load_state_dict(pipe.dit.state_dict(), strict=False)
    pipe = replace(pipe, dit=dit.eval())
    cfg = CameraSuiteConfig(prompts_per_path=1, random_paths=2, frames=5, size=32)
    result = run_camera_suite(pipe, cfg, GenerateConfig(frames=5, height=32, width=32, steps=1))
    assert list(result["paths"]) == [p for p in PRESETS if p != "static"] + ["random-0", "random-1"]
    assert all(np.isfinite(m["px_per_frame"]) for m in result["paths"].values())


def test_world_rope_moves_each_frame_by_its_camera_and_a_still_camera_changes_nothing():
    from filmstrip.models.camera_rope import world_positions
    from filmstrip.models.conditioning import Conditioning
    from filmstrip.models.dit import DiTConfig
    from filmstrip.models.rope import grid_positions

    grid = (2, 4, 4)
    positions = grid_positions(*grid)
    # Frame 1 looks a quarter frame (one token) to the right and zooms in x2; frame 0 stays.
    camera = torch.tensor([[[0.0, 0.0, 0.0], [0.25 / PAN_UNIT, 0.0, math.log(2.0) / math.log(ZOOM_UNIT)]]])
    world = world_positions(positions, camera, torch.tensor([True]), grid)
    torch.testing.assert_close(world[0, :16], positions[:16])  # frame 0: unmoved
    # Centre 1.5: w = 1.5 + (w - 1.5) / 2 + 1 (a quarter of 4 tokens); h only scaled.
    torch.testing.assert_close(world[0, 16:, 2], 2.5 + (positions[16:, 2] - 1.5) / 2)
    torch.testing.assert_close(world[0, 16:, 1], 1.5 + (positions[16:, 1] - 1.5) / 2)
    absent = world_positions(positions, camera, torch.tensor([False]), grid)
    torch.testing.assert_close(absent[0], positions)  # no camera condition: a still camera

    cfg = DiTConfig(in_channels=4, width=64, depth=2, heads=2, context_dim=0, vectors=(("camera", 3),))
    torch.manual_seed(0)
    plain = VideoDiT(cfg).double()
    with torch.no_grad():
        for p in plain.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    world_model = VideoDiT(replace(cfg, camera_rope=True)).double()
    world_model.load_state_dict(plain.state_dict())
    z, t = torch.randn(2, 4, 3, 8, 8, dtype=torch.float64), torch.rand(2, 3, dtype=torch.float64)
    still = Conditioning(vectors={"camera": torch.zeros(2, 3, 3, dtype=torch.float64)})
    assert torch.equal(world_model(z, t, still), plain(z, t, still))
    moving = Conditioning(vectors={"camera": torch.randn(2, 3, 3, dtype=torch.float64)})
    assert not torch.allclose(world_model(z, t, moving), plain(z, t, moving))
    # Each clip its own table: a batch equals its rows run alone.
    rows = torch.cat(
        [world_model(z[i : i + 1], t[i : i + 1], moving.rows(slice(i, i + 1))) for i in range(2)]
    )
    torch.testing.assert_close(world_model(z, t, moving), rows)
    with pytest.raises(InputError, match="camera_rope needs"):
        DiTConfig(camera_rope=True)
