"""Recipes: the bundled model's stages as files, settings laid in order (defaults < --preset <
--config < options < --set), and one clear sentence for a bad setting or checkpoint."""

import json
from dataclasses import replace
from pathlib import Path

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from filmstrip.checkpoint import BUNDLED_DIR, CheckpointError, read_config, save_model
from filmstrip.cli import main
from filmstrip.cli.recipe_options import Opt, recipe_options, trainer_opts
from filmstrip.config import from_dict, load_toml
from filmstrip.errors import InputError
from filmstrip.train.recipes import T2VRecipe

RECIPES = Path(__file__).parent.parent / "recipes" / "t2v"


def test_every_stage_of_the_bundled_model_is_a_recipe_that_chains_to_the_shipped_settings():
    files = sorted(RECIPES.glob("*.toml"))
    stages = [from_dict(T2VRecipe, load_toml(f)) for f in files]
    training = [s for s in stages if s.train.steps > 0]
    assert len(training) == 11 and training[0].init is None
    for before, after in zip(training, training[1:], strict=False):
        assert after.init == f"{before.run}/model", after.run
    # What the chain switches on, the shipped model has.
    shipped = read_config(BUNDLED_DIR / "t2v", "dit")["config"]
    last = training[-1]
    assert last.flow.shift == shipped["spec"]["flow"]["shift"]
    assert last.task.frame_noise == shipped["train"]["frame_noise"]
    for share in ("first_frame", "prefix", "keyframes", "last_frame"):
        assert getattr(last.task, share) == shipped["train"][share], share
    assert any(s.dit.frame_embedding for s in training) == shipped["dit"]["frame_embedding"]
    assert max(s.dit.text_refiner for s in training) == shipped["dit"]["text_refiner"]
    # Every cache a stage reads is built by an earlier stage (or by itself).
    built = set()
    for s in stages:
        built.add(s.cache or f"{s.run}/latents")
        assert set(s.extra_caches) <= built, s.run
    assert sum(s.train.steps == 0 for s in stages) == 2  # 09a and 11a only build caches


def test_the_causal_models_recipes_chain_from_the_bundled_model():
    files = sorted((RECIPES.parent / "long").glob("*.toml"))
    stages = [from_dict(T2VRecipe, load_toml(f)) for f in files]
    cache, causal, shipped, rollout = (stages[files.index(RECIPES.parent / "long" / name)] for name in
                                       ("01a_cache.toml", "01_causal.toml", "02_continue.toml", "02b_rollout.toml"))  # fmt: skip
    assert cache.train.steps == 0 and causal.init == "t2v"
    assert shipped.init == rollout.init == f"{causal.run}/model"
    assert causal.dit.causal and shipped.dit.causal and rollout.dit.causal
    # The rollout run and its control differ in the rollouts alone.
    assert rollout.task.rollout > 0 and shipped.task.rollout == 0
    assert replace(rollout, run=shipped.run, task=replace(rollout.task, rollout=0.0)) == shipped
    assert causal.cache == shipped.cache == rollout.cache == cache.cache


@click.command()
@recipe_options(
    T2VRecipe,
    [
        Opt(
            ("--preset",), None, "", {"default": "small"}, layer=lambda n: {"dit": {"depth": {"tiny": 2}[n]}}
        ),
        Opt(("--run",), "run", "", {"show_default": False}),
        Opt(("--shift",), "flow.shift", "", {"type": float}),
        Opt(("--hold-out", "held_out"), "data.held_out", "", {"multiple": True}),
        *trainer_opts(),
    ],
)
def show(recipe):
    click.echo(json.dumps({"depth": recipe.dit.depth, "steps": recipe.train.steps, "lr": recipe.train.lr,
                           "shift": recipe.flow.shift, "run": recipe.run, "held_out": recipe.data.held_out}))  # fmt: skip


def test_settings_are_laid_in_order(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('run = "runs/x"\n[dit]\ndepth = 4\n[train]\nsteps = 100\nlr = 1e-3\n')
    out = CliRunner().invoke(show, [])
    assert json.loads(out.output)["steps"] == 9000  # the recipe's default
    out = CliRunner().invoke(show, ["--preset", "tiny", "--config", str(config), "--lr", "5e-4"])
    got = json.loads(out.output)
    # The config file sits over the preset, an option typed on the command line over the file.
    assert got == {**got, "depth": 4, "steps": 100, "lr": 5e-4, "run": "runs/x", "shift": None}
    out = CliRunner().invoke(
        show, ["--config", str(config), "--set", "dit.depth=8", "--set", "flow.shift=4.5"]
    )
    got = json.loads(out.output)
    assert got["depth"] == 8 and got["shift"] == 4.5 and got["steps"] == 100  # --set wins
    out = CliRunner().invoke(show, ["--hold-out", "red,circle,up"])
    assert json.loads(out.output)["held_out"] == ["red,circle,up"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "dit.dept=8"], "unknown setting 'dit.dept'"),
        (["--set", "dit.depth=eight"], "dit.depth: expected an integer"),
        (["--set", "train.lr=[1, 2]"], "train.lr: expected a number"),
        (["--set", "depth"], "SECTION.FIELD=VALUE"),
        (["--config", "/no/such/file.toml"], "no such config file"),
    ],
)
def test_a_bad_setting_is_one_sentence(args, message):
    result = CliRunner().invoke(main, ["train", "t2v", *args])
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback_of_our_errors(monkeypatch):
    monkeypatch.setenv("FILMSTRIP_DEBUG", "1")
    result = CliRunner().invoke(main, ["train", "t2v", "--set", "dit.dept=8"])
    assert isinstance(result.exception, InputError)


def test_checkpoint_formats(tmp_path):
    """A checkpoint from a newer filmstrip is refused with a sentence; format 1 (spec and
    training settings together in "t2v") still loads."""
    from filmstrip.models.dit import VideoDiT, preset
    from filmstrip.models.vae import VideoVAE
    from filmstrip.models.vae import preset as vae_preset
    from filmstrip.pipelines.generate import load_pipeline

    vae = VideoVAE(vae_preset("tiny", latent_channels=4))
    save_model(tmp_path / "vae", "vae", json.loads(json.dumps(vars(vae.cfg))), vae.state_dict())
    dit = VideoDiT(preset("tiny", in_channels=4))
    old = {
        "dit": json.loads(json.dumps(vars(dit.cfg))),
        "t2v": {"flow": {"shift": 3.0}, "vae": str(tmp_path / "vae"), "frame_noise": 0.5},
    }
    save_model(tmp_path / "old", "dit", old, dit.state_dict())
    info = json.loads((tmp_path / "old" / "config.json").read_text())
    (tmp_path / "old" / "config.json").write_text(json.dumps({**info, "format": 1}))
    pipe = load_pipeline(tmp_path / "old")
    assert pipe.spec.flow.shift == 3.0 and pipe.spec.vae == str(tmp_path / "vae")
    (tmp_path / "old" / "config.json").write_text(json.dumps({**info, "format": 99}))
    with pytest.raises(CheckpointError, match="newer than this filmstrip reads"):
        load_pipeline(tmp_path / "old")
    (tmp_path / "old" / "config.json").write_text(
        json.dumps({**info, "config": {**old, "dit": {"depth": "2"}}})
    )
    with pytest.raises(CheckpointError, match="dit.depth: expected an integer"):
        load_pipeline(tmp_path / "old")
    assert torch.is_tensor(next(iter(dit.state_dict().values())))


def test_stage_one_recipe_is_the_readme_command(monkeypatch):
    """`--config recipes/t2v/01_scratch.toml` runs exactly what the README's stage-1 command
    ran (the run that measured the stage-1 numbers), apart from the run folder."""
    import filmstrip.train.recipes as recipes

    seen = []
    monkeypatch.setattr(recipes, "train_t2v", lambda recipe, log: seen.append(recipe) or Path("x"))
    for args in (
        ["--data", "shapes", "--preset", "small", "--run", "runs/t2v"],
        ["--config", str(RECIPES / "01_scratch.toml"), "--run", "runs/t2v"],
    ):
        result = CliRunner().invoke(main, ["train", "t2v", *args])
        assert result.exit_code == 0, result.output
    assert seen[0] == seen[1]


@pytest.mark.parametrize("name, stages, total", [("vae3d", 8, 19_500), ("vae2d", 3, 8_000)])
def test_the_bundled_autoencoders_stages_are_recipes(name, stages, total):
    from filmstrip.train.recipes import VAERecipe

    recipes = [from_dict(VAERecipe, load_toml(f)) for f in sorted((RECIPES.parent / name).glob("*.toml"))]
    assert len(recipes) == stages and recipes[0].init is None and recipes[0].preset == name
    for before, after in zip(recipes, recipes[1:], strict=False):
        assert after.init == f"{before.run}/model" and after.freeze_encoder
    assert sum(r.train.steps for r in recipes) == total
    shipped = read_config(BUNDLED_DIR / name, "vae")
    assert recipes[-1].loss.temporal == shipped["meta"]["loss"]["temporal"]
    upsampling = [r.time_upsample for r in recipes if r.time_upsample]
    assert (upsampling or [shipped["config"]["time_upsample"]])[-1] == shipped["config"]["time_upsample"]


def test_the_control_recipes_chain_and_parse_as_their_runs():
    from filmstrip.train.recipes import ControlRecipe, LoRARecipe

    folder = RECIPES.parent / "control"
    kinds = {"03_lora_star.toml": LoRARecipe, "04_controlnet.toml": ControlRecipe}
    stages = {
        f.name: from_dict(kinds.get(f.name, T2VRecipe), load_toml(f)) for f in sorted(folder.glob("*.toml"))
    }
    motion_cache, motion = stages["01a_motion_cache.toml"], stages["01_motion.toml"]
    camera_cache, camera = stages["02a_camera_cache.toml"], stages["02_camera.toml"]
    assert motion_cache.train.steps == camera_cache.train.steps == 0
    assert motion.cache == motion_cache.cache and motion.data == motion_cache.data
    assert motion.dit.vectors == (("motion", 1),) and motion.init == "filmstrip/weights/t2v"
    assert camera.init == f"{motion.run}/model" and camera.dit.vectors == (("camera", 3),)
    # 02 ran on the older camera texture's cache; 02b, its successor, on 02a's.
    world = stages["02b_camera_rope.toml"]
    assert (
        world.init == f"{camera.run}/model"
        and world.dit.camera_rope
        and world.dit.vectors == camera.dit.vectors
    )
    assert world.cache == camera_cache.cache and world.extra_caches == (motion.cache,)
    alone = stages["02c_camera_only.toml"]
    assert alone.init == f"{world.run}/model" and alone.cache == world.cache and not alone.extra_caches
    assert alone.dit == world.dit and alone.task == world.task
    assert camera.data == camera_cache.data == world.data and camera.train.seed == camera_cache.train.seed
    lora = stages["03_lora_star.toml"]
    assert lora.data.source.startswith("folder:") and lora.data.mirror and lora.prior
    assert lora.task.focus_weight > 1  # its folder has the stars' masks
    assert stages["04_controlnet.toml"].controlnet.depth == 3


def test_the_probe_recipes_parse_and_chain():
    a, b = (
        from_dict(T2VRecipe, load_toml(RECIPES.parent / "probes" / f"extension_prefix_{x}.toml"))
        for x in "ab"
    )
    assert a.init == "filmstrip/weights/t2v" and b.init == f"{a.run}/model" and a.cache == b.cache
    assert a.task.prefix == b.task.prefix == 0.6 and a.train.steps + b.train.steps == 900
    more, objects, motion = (
        from_dict(T2VRecipe, load_toml(RECIPES.parent / "probes" / f"causal_{x}.toml"))
        for x in ("more", "objects", "motion")
    )
    # Each probe is causal_more with one task setting and its length changed, nothing else.
    assert (objects.task.focus, objects.task.focus_weight, motion.task.motion) == ("objects", 10.0, 1.0)
    for probe, undo in ((objects, dict(focus="masks", focus_weight=1.0)), (motion, dict(motion=0.0))):
        assert replace(probe.task, **undo) == more.task
        assert replace(probe, run=more.run, task=more.task, train=replace(probe.train, steps=2400)) == more
    # The speed probe adds the motion condition, withheld from a tenth of the clips.
    speed = from_dict(T2VRecipe, load_toml(RECIPES.parent / "probes" / "causal_speed.toml"))
    assert speed.dit.vectors == (("motion", 1),) and speed.task.motion_dropout == 0.1
    assert replace(speed.task, motion_dropout=more.task.motion_dropout) == more.task
    same = replace(speed, run=more.run, dit=more.dit, task=more.task, train=replace(speed.train, steps=2400))
    assert same == more
    # Its second arm trains the same condition on a cache of a wider range of speeds, at lr 1e-4.
    wide = from_dict(T2VRecipe, load_toml(RECIPES.parent / "probes" / "causal_speed_wide.toml"))
    cache = from_dict(T2VRecipe, load_toml(RECIPES.parent / "probes" / "causal_speed_cache.toml"))
    assert wide.cache == cache.cache and wide.data == cache.data and cache.data.speed == "0.05-0.5"
    assert (wide.train.lr, wide.train.steps) == (1e-4, 2400)
    assert replace(wide, run=speed.run, cache=speed.cache, data=speed.data, train=speed.train) == speed
    # Its continuation: 1,200 more steps on new batches, with and without the motion loss.
    go_on, moving = (
        from_dict(T2VRecipe, load_toml(RECIPES.parent / "probes" / f"causal_speed_wide_{x}.toml"))
        for x in ("more", "motion")
    )
    assert go_on.init == moving.init == f"{wide.run}/model" and go_on.train.steps == 1200
    assert (
        replace(go_on, run=wide.run, init=wide.init, train=replace(go_on.train, steps=2400, seed=4)) == wide
    )
    assert replace(moving, run=go_on.run, task=replace(moving.task, motion=0.0)) == go_on
    assert moving.task.motion == 1.0


def test_the_lora_probes_differ_from_the_shipped_recipe_only_in_their_targets():
    import re
    from dataclasses import replace

    from filmstrip.train.recipes import LoRARecipe

    shipped = from_dict(LoRARecipe, load_toml(RECIPES.parent / "control" / "03_lora_star.toml"))
    for name in ("lora_cross", "lora_cross_mlp"):
        probe = from_dict(LoRARecipe, load_toml(RECIPES.parent / "probes" / f"{name}.toml"))
        targets = probe.lora.targets
        assert re.fullmatch(targets, "blocks.0.cross.kv") and not re.fullmatch(targets, "blocks.0.attn.qkv")
        assert bool(re.fullmatch(targets, "blocks.5.mlp.2")) == name.endswith("mlp")
        # They ran beside the recipe as shipped before session 28: 3,600 steps at lr 1e-3,
        # noise levels at the base model's shift (before session 29), every pixel's loss
        # alike and half the batches from the prior (before session 30).
        assert (probe.train.steps, probe.train.lr, probe.shift) == (3600, 1e-3, 4.5)
        assert (probe.task.focus_weight, probe.prior_share) == (1.0, 0.5)
        train = replace(probe.train, steps=shipped.train.steps, lr=shipped.train.lr)
        task = replace(probe.task, focus_weight=shipped.task.focus_weight)
        same = replace(
            probe, run=shipped.run, cache=shipped.cache, lora=shipped.lora, train=train, shift=shipped.shift,
            task=task, prior_share=shipped.prior_share,
        )  # fmt: skip
        assert same == shipped
    # Session 32's probe: the shipped recipe with the text refiner adapted as well.
    refiner = from_dict(LoRARecipe, load_toml(RECIPES.parent / "probes" / "lora_refiner.toml"))
    for name in ("text_refiner.layers.1.attn.qkv", "text_refiner.layers.0.mlp.2", "blocks.5.cross.kv"):
        assert re.fullmatch(refiner.lora.targets, name)
    assert not re.fullmatch(refiner.lora.targets, "context_embed")
    assert replace(refiner, run=shipped.run, lora=shipped.lora) == shipped


def test_the_controlnet_probe_goes_on_from_the_shipped_branch_as_it_was_trained():
    from filmstrip.train.recipes import ControlRecipe

    shipped = from_dict(ControlRecipe, load_toml(RECIPES.parent / "control" / "04_controlnet.toml"))
    probe = from_dict(ControlRecipe, load_toml(RECIPES.parent / "probes" / "controlnet_longer.toml"))
    assert probe.init == "filmstrip/weights/controlnet_masks" and probe.cache == shipped.cache
    assert (
        probe.controlnet == shipped.controlnet and probe.task == shipped.task and probe.data == shipped.data
    )
    assert probe.train.seed != shipped.train.seed


def test_configs_name_the_field_out_of_range():
    """`config.require` names the first field out of range; NaN is out of every range."""
    from filmstrip.data.cuts import CutConfig
    from filmstrip.data.prepare import PrepareConfig
    from filmstrip.data.shapes import ShapesConfig

    cases = [
        (lambda: ShapesConfig(num_frames=0), "num_frames must be at least 1, got 0"),
        (lambda: ShapesConfig(fps=0.0), "fps must be more than 0, got 0.0"),
        (lambda: CutConfig(ratio=float("nan")), "ratio must be more than 1, got nan"),
        (lambda: CutConfig(min_gap=-3), "min_gap must be at least 1, got -3"),
        (lambda: PrepareConfig(area=0), "area must be at least 64, got 0"),
        (
            lambda: PrepareConfig(min_seconds=5.0, max_seconds=2.0),
            r"min_seconds \(5.0\) is more than max_seconds",
        ),
        (lambda: PrepareConfig(tolerance=2.0), "tolerance is the most of a frame a bucket may crop away"),
    ]
    from filmstrip.data.folder import FolderConfig
    from filmstrip.diffusion.flow import FlowConfig
    from filmstrip.diffusion.forcing import RolloutConfig
    from filmstrip.eval.prompt_suite import SuiteConfig
    from filmstrip.train.vae_task import VAELossConfig
    from filmstrip.world.train import WorldTaskConfig

    cases += [
        (lambda: FolderConfig("x", fps=0.0), r"fps must be more than 0 \(or None"),
        (lambda: FolderConfig("x", sampling="every"), "sampling must be 'index' or 'time'"),
        (lambda: FlowConfig(shift=-1.0), r"shift must be more than 0 \(or None"),
        (lambda: FlowConfig(logit_std=0.0), "logit_std must be more than 0"),
        (lambda: RolloutConfig(steps=0), "steps must be at least 1"),
        (lambda: RolloutConfig(context_noise=1.0), "context_noise is a noise level below 1"),
        (lambda: VAELossConfig(kl=-1e-4), "kl must be at least 0"),
        (lambda: WorldTaskConfig(event_share=1.5), "context_noise and event_share are below 1"),
        (lambda: SuiteConfig(samples=0), "samples must be at least 1"),
    ]
    for make, message in cases:
        with pytest.raises(InputError, match=f"^{message}"):
            make()
    for cls in (
        ShapesConfig,
        CutConfig,
        PrepareConfig,
        FlowConfig,
        RolloutConfig,
        VAELossConfig,
        WorldTaskConfig,
    ):
        cls()  # the defaults are in range
    # A config made in Python gets the type checks a recipe file gets.
    from filmstrip.train.trainer import TrainConfig

    with pytest.raises(InputError, match=r"^train.steps: expected an integer, got 2.5$"):
        TrainConfig(steps=2.5)
    with pytest.raises(InputError, match=r"^train.lr: expected a number, got '1e-3'$"):
        TrainConfig(lr="1e-3")
    TrainConfig(steps=np.int64(5), lr=np.float32(1e-3), betas=[0.9, 0.99])  # numpy numbers, a list
    from filmstrip.models.dit import DiTConfig
    from filmstrip.models.vae import VAEConfig

    with pytest.raises(InputError, match=r"^dit.width: expected an integer, got 256.0$"):
        DiTConfig(width=256.0)
    with pytest.raises(InputError, match=r"^vae.latent_channels: expected an integer, got 16.0$"):
        VAEConfig(latent_channels=16.0)
    # A recipe's value out of range is refused with its place in the recipe.
    with pytest.raises(InputError, match=r"^flow: shift must be more than 0"):
        from_dict(T2VRecipe, {"flow": {"shift": -2.0}})
