"""Motion strength: per-frame speeds from the truth and from optical flow, stored with the
latent cache, pooled to latent frames, and a model that takes them as a condition."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from filmstrip.cli import main
from filmstrip.data import ShapesConfig, ShapesDataset, build_dataset
from filmstrip.data.flow import frame_speeds
from filmstrip.data.latents import LatentDataset, build_latent_cache, collate_latents
from filmstrip.data.motion import FULL_SPEED, track_speeds
from filmstrip.data.shapes import scene_speeds
from filmstrip.diffusion.frames import latent_frame_mean
from filmstrip.diffusion.spec import ModelSpec
from filmstrip.errors import InputError, TrainingError
from filmstrip.eval.adherence import detect
from filmstrip.eval.motion_strength import MotionSuiteConfig, run_motion_suite, track_speed
from filmstrip.io import write_video
from filmstrip.models.conditioning import Conditioning
from filmstrip.models.dit import VideoDiT
from filmstrip.models.dit import preset as dit_preset
from filmstrip.pipelines.generate import GenerateConfig, generate, load_pipeline
from filmstrip.train.t2v_task import T2VConfig, T2VTask


def pan(step_px: int, frames: int = 9, size: int = 64) -> np.ndarray:
    """A textured picture sliding left by `step_px` a frame: everything moves at one speed."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (size // 4, (size + step_px * frames) // 4, 3)).astype(np.uint8)
    texture = np.repeat(np.repeat(texture, 4, 0), 4, 1)
    return np.stack([texture[:, k * step_px : k * step_px + size] for k in range(frames)])


def with_motion(pipe, switched_on: bool = False):
    """The pipeline with its DiT given a motion condition: a no-op as a new one is, or with its
    embedding switched on (random weights) so that the condition changes the clip."""
    dit = VideoDiT(replace(pipe.dit.cfg, vectors=(("motion", 1),)))
    dit.load_state_dict(pipe.dit.state_dict(), strict=False)
    if switched_on:
        with torch.no_grad():
            for p in dit.vector_embed.parameters():
                p.add_(torch.randn_like(p))
    return replace(pipe, dit=dit.eval())


@pytest.mark.parametrize("step_px", [1, 2, 4])
def test_flow_measures_a_known_pan_within_ten_percent(step_px):
    speeds = frame_speeds(pan(step_px), fps=8)
    assert speeds.shape == (9,) and speeds[0] == speeds[1]  # frame 0 takes frame 1's step
    assert speeds.mean() == pytest.approx(step_px * 8 / 64, rel=0.1)


def test_shapes_speeds_are_the_objects_exact_mean_speed():
    cfg = ShapesConfig(num_frames=9, height=64, width=96, num_clips=20, speed=(0.2, 0.2), still_probability=0)
    ds = ShapesDataset(cfg)
    for i in range(20):
        scene = ds.scene(i)
        speed = scene_speeds(scene, cfg)
        assert speed.shape == (9,) and speed.dtype == np.float32
        # Speed is in frame widths per second; the motion unit is short sides per second.
        # Before any bounce every object moves its own speed (diagonals too).
        expected = np.mean([o.speed for o in scene.objects]) * cfg.width / cfg.height
        assert speed.max() == pytest.approx(expected, rel=1e-4)
        assert ds[i]["motion"].tolist() == speed.tolist()
    still = ShapesConfig(num_frames=5, num_clips=3, still_probability=1.0)
    assert not ShapesDataset(still)[0]["motion"].any()
    with pytest.raises(ValueError, match="frames >= 2"):
        track_speeds(np.zeros((1, 1, 2)), 64, 8)


def test_the_cache_stores_motion_and_old_caches_read_it_from_the_truth(tmp_path, tiny_vae, text_encoder):
    ds = ShapesDataset(ShapesConfig(num_frames=5, height=32, width=32, num_clips=4, speed=(0.1, 0.5)))
    root = build_latent_cache(ds, tiny_vae, text_encoder, tmp_path / "cache", num_clips=4)
    cache = LatentDataset(root)
    for i in range(4):
        torch.testing.assert_close(cache[i]["motion"], torch.from_numpy(ds[i]["motion"]))
    assert collate_latents([cache[0], cache[3]])["motion"].shape == (2, 5)
    # A cache from before motion was stored: the same speeds, from the truth's pixel tracks.
    shard = root / "shard_00000.safetensors"
    with safe_open(str(shard), "pt") as f:
        meta = f.metadata()
    tensors = load_file(str(shard))
    del tensors["motion"]
    save_file(tensors, str(shard), metadata=meta)
    old = LatentDataset(root)
    for i in range(4):
        torch.testing.assert_close(old[i]["motion"], torch.from_numpy(ds[i]["motion"]), rtol=1e-3, atol=1e-3)


def test_a_folder_clip_without_truth_gets_its_motion_from_optical_flow(tmp_path, tiny_vae, text_encoder):
    clip = np.ascontiguousarray(pan(2, frames=9, size=32).transpose(3, 0, 1, 2))
    write_video(tmp_path / "v" / "pan.mp4", clip, fps=8, quality=5)
    (tmp_path / "v" / "pan.txt").write_text("a pan")

    ds = build_dataset(f"folder:{tmp_path / 'v'}", num_frames=9, height=32, width=32)
    root = build_latent_cache(ds, tiny_vae, text_encoder, tmp_path / "cache", num_clips=1)
    motion = LatentDataset(root)[0]["motion"]
    assert motion.shape == (9,) and float(motion.mean()) == pytest.approx(2 * 8 / 32, rel=0.15)


def test_latent_frame_mean_follows_the_causal_vae_grouping():
    values = torch.arange(9.0)[None]  # frames 0..8 -> latent frames {0}, {1..4}, {5..8}
    assert latent_frame_mean(values, 3).tolist() == [[0.0, 2.5, 6.5]]
    assert latent_frame_mean(values, 1).tolist() == [[0.0]]


def motion_task(text_encoder, dropout=0.0):
    null, _ = text_encoder.encode([""])
    torch.manual_seed(0)
    cfg = dit_preset("tiny", in_channels=4, vectors=(("motion", 1),))
    return T2VTask(cfg, ModelSpec(), T2VConfig(text_dropout=0.0, motion_dropout=dropout), null[0])


def test_a_new_motion_condition_starts_as_a_no_op_and_then_changes_the_prediction(text_encoder):
    task = motion_task(text_encoder)
    model = task.model
    z, t = torch.randn(2, 4, 3, 4, 4), torch.rand(2, 3)
    text, mask = text_encoder.encode(["a red circle", "a blue square"])
    base = Conditioning(text, mask)
    fast = Conditioning(text, mask, {"motion": torch.ones(2, 3, 1)})
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.startswith("vector_embed."):
                p.add_(torch.randn_like(p) * 0.05)  # open every gate but the new condition's
        assert torch.equal(model(z, t, base), model(z, t, fast))
        for p in model.vector_embed.parameters():
            p.add_(torch.randn_like(p) * 0.5)
        assert not torch.allclose(model(z, t, base), model(z, t, fast))
        absent = Conditioning(
            text, mask, {"motion": torch.ones(2, 3, 1)}, {"motion": torch.zeros(2, dtype=torch.bool)}
        )
        assert torch.equal(model(z, t, base), model(z, t, absent))


def test_training_gives_each_clip_its_speed_per_latent_frame(text_encoder):
    task = motion_task(text_encoder)
    z = torch.randn(1, 4, 3, 4, 4)
    text, mask = text_encoder.encode(["a red circle moves right"])
    batch = {
        "latents": torch.cat([z, -z]).repeat(4, 1, 1, 1, 1),
        "text": text.expand(8, -1, -1),
        "text_mask": mask.expand(8, -1),
        "motion": torch.tensor([[0.05] * 9, [0.45] * 9]).repeat(4, 1),
    }
    g = torch.Generator().manual_seed(0)
    seen = []
    original = task._with_vectors

    def spy(cond, batch_, rows, frames, gen):
        out = original(cond, batch_, rows, frames, gen)
        seen.append(out.vectors["motion"])
        return out

    task._with_vectors = spy
    task.loss(task.model, batch, 0, g)
    assert seen[0].shape[1:] == (1, 1) and seen[1].shape[1:] == (3, 1)  # the image row, then video
    # Row 0 trains as an image; the video rows start at row 1, a fast clip.
    torch.testing.assert_close(seen[1][0, :, 0], torch.full((3,), 0.45 / FULL_SPEED))
    torch.testing.assert_close(seen[1][1, :, 0], torch.full((3,), 0.05 / FULL_SPEED))
    batch.pop("motion")
    with pytest.raises(TrainingError, match="no per-frame motion"):
        task.loss(task.model, batch, 0, g)


def test_generate_with_motion_and_its_errors(tiny_bundle, tmp_path):
    """--motion reaches a motion model (the clip depends on it) and is refused by one without."""
    pipe = load_pipeline(tiny_bundle)
    with pytest.raises(InputError, match="not trained with a motion condition"):
        generate(pipe, ["a red circle"], GenerateConfig(frames=5, height=32, width=32, steps=2, motion=0.5))
    with pytest.raises(InputError, match=r"motion strength is in \[0, 1\]"):
        GenerateConfig(motion=1.5)
    pipe = with_motion(pipe, switched_on=True)
    gen = GenerateConfig(frames=5, height=32, width=32, steps=2)
    slow = generate(pipe, ["a red circle"], replace(gen, motion=0.0))
    fast = generate(pipe, ["a red circle"], replace(gen, motion=1.0))
    assert not torch.allclose(slow, fast)
    out = CliRunner().invoke(
        main, ["generate", "a red circle", "--checkpoint", str(tiny_bundle), "--motion", "2"]
    )
    assert out.exit_code != 0 and "--motion" in out.output


def test_one_motion_strength_per_prompt(tiny_bundle):
    """A tuple of strengths gives each prompt its own: the batch equals the prompts made one by
    one (row k takes seed + k); a tuple of the wrong length or a value outside [0, 1] is refused."""
    pipe = with_motion(load_pipeline(tiny_bundle), switched_on=True)
    gen = GenerateConfig(frames=5, height=32, width=32, steps=2)
    both = generate(pipe, ["a red circle", "a blue square"], replace(gen, motion=(0.0, 1.0)))
    first = generate(pipe, ["a red circle"], replace(gen, motion=0.0))
    second = generate(pipe, ["a blue square"], replace(gen, motion=1.0, seed=1))
    torch.testing.assert_close(both, torch.cat([first, second]), atol=1e-5, rtol=0)
    assert GenerateConfig(motion=[0.0, 1.0]).motion == (0.0, 1.0)
    with pytest.raises(InputError, match="2 motion strengths for 3 prompts"):
        generate(pipe, ["a", "b", "c"], replace(gen, motion=(0.0, 1.0)))
    with pytest.raises(InputError, match=r"motion strength is in \[0, 1\]"):
        GenerateConfig(motion=(0.5, -0.1))


def test_the_given_clips_speed_is_read_from_its_pixels():
    """Extension told the given clip's speed reads it as the condition was trained on: the
    objects' mean speed per frame, here from pixels against the truth's."""
    from filmstrip.eval.conditioning import given_motion

    shapes = ShapesConfig(num_frames=9, num_clips=8, still_probability=0.3, seed=5)
    ds = ShapesDataset(shapes)
    for i in range(8):
        item = ds[i]
        truth = float(item["motion"][1:].mean()) / FULL_SPEED
        assert given_motion(item["video"], shapes.fps) == pytest.approx(truth, rel=0.1, abs=0.01)


def test_extension_told_the_given_speed_passes_each_scenes_own(tiny_bundle, monkeypatch):
    """--given-speed: each scene's strength is read from its own given frames, one per prompt."""
    import filmstrip.eval.conditioning as conditioning

    pipe = with_motion(load_pipeline(tiny_bundle))
    suite = conditioning.ConditionSuite(num_scenes=3, frames=9, size=32, context=5)
    asked = []
    real = conditioning.generate

    def spy(pipe_, prompts, gen, *args, **kwargs):
        asked.append(gen.motion)
        return real(pipe_, prompts, gen, *args, **kwargs)

    monkeypatch.setattr(conditioning, "generate", spy)
    gen = GenerateConfig(frames=9, height=32, width=32, steps=2)
    out = conditioning.run_conditioning(pipe, "extend", suite, gen, progress=False, given_speed=True)
    scenes = conditioning.suite_scenes(suite)
    expected = tuple(conditioning.given_motion(s["video"][:, :5], suite.fps) for s in scenes)
    assert asked == [expected] and len(out["rows"]) == 3 and len(set(expected)) > 1
    with pytest.raises(InputError, match="extension only"):
        conditioning.run_conditioning(pipe, "i2v", suite, gen, progress=False, given_speed=True)


def test_measured_speed_of_real_clips_matches_their_truth():
    """The motion suite's speed, from pixels alone, on clips whose speed is known."""
    for speed in (0.1, 0.3):
        cfg = MotionSuiteConfig(num_prompts=6)
        shapes = ShapesConfig(num_frames=17, num_clips=6, speed=(speed, speed), still_probability=0, seed=3)
        ds = ShapesDataset(shapes)
        measured = [track_speed(d.track, 64, 8.0) for i in range(6) for d in detect(ds[i]["video"], cfg.fps)]
        assert np.mean(measured) == pytest.approx(speed, rel=0.1)
    assert track_speed([(0, 0), (3, 4), None, (6, 8), (9, 12)], side=10, fps=2) == pytest.approx(1.0)
    assert track_speed([(0, 0), None, None], side=10, fps=2) is None


def test_motion_suite_runs_every_level_and_the_free_row(tiny_bundle):
    pipe = with_motion(load_pipeline(tiny_bundle))
    cfg = MotionSuiteConfig(levels=(0.0, 1.0), num_prompts=2, frames=5, size=32)
    result = run_motion_suite(pipe, cfg, GenerateConfig(frames=5, height=32, width=32, steps=1))
    assert [row["level"] for row in result["levels"]] == [0.0, 1.0, None]
    assert result["levels"][1]["asked"] == FULL_SPEED and len(result["rows"]) == 6
    with pytest.raises(InputError, match="motion levels"):
        run_motion_suite(pipe, replace(cfg, levels=(2.0,)), GenerateConfig())


def test_eval_motion_and_camera_refuse_a_model_without_the_condition(tiny_bundle):
    for command, condition in (("motion", "motion"), ("camera", "camera")):
        result = CliRunner().invoke(main, ["eval", command, "-c", str(tiny_bundle)])
        assert result.exit_code == 1
        assert f"not trained with a {condition} condition, which `eval {command}` measures" in result.output
