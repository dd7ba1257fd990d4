"""`filmstrip eval`: measure trained models."""

from __future__ import annotations

from pathlib import Path

import click

from filmstrip.atomic import write_text_atomic
from filmstrip.cli.generate import (
    COMPILE,
    DEVICE,
    FRAMES,
    LAG,
    LORA,
    PRECISION,
    T2V_CHECKPOINT,
    size_option,
    with_loras,
)
from filmstrip.cli.recipe_options import count_option
from filmstrip.errors import InputError
from filmstrip.pipelines.generate import CONTROL_TEXT_SCALE, GenerateConfig
from filmstrip.train.recipes import ClipData, parse_held_out

# `filmstrip eval long`'s strategies (eval/long_suite.STRATEGIES), named here so --help
# imports no torch.
STRATEGY_NAMES = ("naive", "window", "sink", "sink-continue", "noisy-context", "pyramid", "continue-noisy",
                  "continue-pyramid", "sliding", "sliding-freenoise", "hierarchical")  # fmt: skip


def _save_json(path: Path, obj) -> None:
    """--json: every row of an evaluation, for plots and later comparisons."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(obj, indent=1))


def shapes_pipeline(checkpoint, **load):
    """load_pipeline for an evaluation that reads `shapes` scenes from pixels (colours, outlines,
    positions), with a warning where the model says it learned from other data: its numbers
    then mean something only if those videos were shapes scenes too (exported, say)."""
    import warnings

    from filmstrip.errors import FilmstripWarning
    from filmstrip.pipelines.generate import load_pipeline

    pipe = load_pipeline(checkpoint, **load)
    if pipe.trained_on and not pipe.trained_on.startswith("shapes"):
        warnings.warn(
            f"{checkpoint}: trained on {pipe.trained_on.split(' ')[0]}, not on `shapes`, whose scenes this "
            "evaluation reads from the pixels; `eval dataset --data ...` scores a model on any data",
            FilmstripWarning,
            stacklevel=2,
        )
    return pipe


@click.group("eval")
def eval_group() -> None:
    """Evaluate trained models."""


@eval_group.command("adherence")
@T2V_CHECKPOINT
@LORA
@count_option("--prompts", 200, "Half seen in training, half held out.")
@click.option("--frames", default=GenerateConfig.frames, show_default=True)
@click.option("--size", default=GenerateConfig.height, show_default=True)
@click.option("--steps", default=GenerateConfig.steps, show_default=True)
@click.option("--cfg", "text_scale", default=GenerateConfig.text_scale, show_default=True)
@click.option("--seed", default=GenerateConfig.seed, show_default=True)
@LAG
@click.option(
    "--held-out",
    "held_out",
    multiple=True,
    default=ClipData().held_out,
    show_default=True,
    help="The combinations the model was trained without (as in `train t2v`).",
)
@count_option(
    "--samples", 1, "Videos per prompt, each from its own noise: more average out the sampling noise."
)
@click.option("--train-seed", default=0, show_default=True, help="The seed the model was trained with.")
@click.option(
    "--start-words",
    default=0.0,
    show_default=True,
    help="Chance that a prompt says where an object starts (as in `train t2v`).",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write all rows here."
)
@PRECISION
@DEVICE
@COMPILE
def eval_adherence(
    checkpoint,
    loras,
    prompts,
    frames,
    size,
    steps,
    text_scale,
    seed,
    lag,
    held_out,
    samples,
    train_seed,
    start_words,
    json_path,
    precision,
    device,
    compile_,
):
    """Prompt adherence of a `shapes` text-to-video model: colour, shape, direction, count."""

    from filmstrip.eval.prompt_suite import SuiteConfig, run_suite
    from filmstrip.pipelines.generate import GenerateConfig

    suite = SuiteConfig(
        num_prompts=prompts,
        frames=frames,
        size=size,
        train_seed=train_seed,
        held_out=parse_held_out(held_out),
        start_words=start_words,
        samples=samples,
    )
    gen = GenerateConfig(
        frames=frames, height=size, width=size, steps=steps, text_scale=text_scale, seed=seed, lag=lag
    )
    pipe = shapes_pipeline(checkpoint, device=device, precision=precision, compile=compile_)
    with_loras(pipe, loras)
    result = run_suite(pipe, suite, gen)
    if json_path:
        _save_json(json_path, result)
    per = f", {samples} videos each" if samples > 1 else ""
    click.echo(f"{'prompts' + per:<22}{'n':>4}  colour  shape  direction  count  consistency  swapped")
    for part, label in (("seen", "seen in training"), ("held_out", "held-out combinations")):
        m, n = result[part], sum(r["set"] == part and r["sample"] == 0 for r in result["prompts"])
        if m:
            click.echo(
                f"{label:<22}{n:>4}  {m['colour']:6.1%} {m['shape']:6.1%} {m['direction']:10.1%} "
                f"{m['count']:6.1%} {m['consistency']:12.1%} {m['swapped']:8.1%}"
            )
    if result["held_out_object"]:
        m = result["held_out_object"]
        click.echo(
            f"{'  the held-out objects':<22}{'':>4}  {m['colour']:6.1%} {m['shape']:6.1%} {m['direction']:10.1%}"
        )
    for count, m in result["by_objects"].items():
        n = sum(r["objects"] == count and r["sample"] == 0 for r in result["prompts"])
        label = f"all, {count} object{'s' if count > 1 else ''}"
        click.echo(
            f"{label:<22}{n:>4}  {m['colour']:6.1%} {m['shape']:6.1%} {m['direction']:10.1%} "
            f"{m['count']:6.1%} {m['consistency']:12.1%} {m['swapped']:8.1%}"
        )


VAE_CEILING = click.option(
    "--ceiling",
    is_flag=True,
    help="Also score the scenes' own clips through the model's VAE: what a perfect model reaches.",
)


@eval_group.command("concept")
@T2V_CHECKPOINT
@LORA
@click.option(
    "--shape", default="star", show_default=True, help="The new shape (one the base model never saw)."
)
@count_option("--prompts", 50, "Fresh scenes, each with an object of --shape.")
@click.option(
    "--samples", default=1, show_default=True, type=click.IntRange(min=1), help="Videos per prompt."
)
@click.option("--steps", default=GenerateConfig.steps, show_default=True)
@click.option("--cfg", "text_scale", default=GenerateConfig.text_scale, show_default=True)
@click.option("--seed", default=GenerateConfig.seed, show_default=True)
@click.option(
    "--scene-seed",
    type=int,
    help="Draws the scenes [default: 4242]; another seed gives another fresh set, to confirm a "
    "choice made on the first.",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write all rows here."
)
@VAE_CEILING
@PRECISION
@DEVICE
def eval_concept(
    checkpoint,
    loras,
    shape,
    prompts,
    samples,
    steps,
    text_scale,
    seed,
    scene_seed,
    json_path,
    ceiling,
    precision,
    device,
):
    """Has the model (with --lora) learned a new shape? Adherence on scenes that hold one."""

    from filmstrip.data.shapes import EXTRA_SHAPES, SHAPES
    from filmstrip.eval.concept import ConceptConfig, concept_ceiling, run_concept

    if shape not in SHAPES + EXTRA_SHAPES:
        raise click.BadParameter(
            f"{shape!r}: one of {', '.join(SHAPES + EXTRA_SHAPES)}", param_hint="--shape"
        )
    pipe = shapes_pipeline(checkpoint, device=device, precision=precision)
    with_loras(pipe, loras)
    seeded = {} if scene_seed is None else {"scene_seed": scene_seed}
    cfg = ConceptConfig(shape=shape, num_prompts=prompts, samples=samples, **seeded)
    result = run_concept(pipe, cfg, GenerateConfig(steps=steps, text_scale=text_scale, seed=seed))
    if ceiling:
        result["vae_ceiling"] = concept_ceiling(pipe, cfg)
    if json_path:
        _save_json(json_path, result)
    click.echo(f"{len(result['rows'])} videos of prompts with a {shape}")
    for title, part in (("", result), (", their own clips through the VAE", result.get("vae_ceiling"))):
        if part is None:
            continue
        p, c = part["prompt"], part["concept"]
        click.echo(
            f"  whole prompts{title}:  colour {p['colour']:.1%}  shape {p['shape']:.1%}  "
            f"direction {p['direction']:.1%}  count {p['count']:.1%}"
        )
        click.echo(
            f"  the {shape}s{title}:  colour {c['colour']:.1%}  shape {c['shape']:.1%}  direction {c['direction']:.1%}"
        )


@eval_group.command("motion")
@T2V_CHECKPOINT
@click.option(
    "--levels", default="0,0.2,0.4,0.6,0.8,1", show_default=True, help="Motion strengths to compare."
)
@count_option("--prompts", 40, "Fresh scenes in which every object moves.")
@click.option("--steps", default=GenerateConfig.steps, show_default=True)
@click.option("--cfg", "text_scale", default=GenerateConfig.text_scale, show_default=True)
@click.option("--seed", default=GenerateConfig.seed, show_default=True)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write all rows here."
)
@PRECISION
@DEVICE
def eval_motion(checkpoint, levels, prompts, steps, text_scale, seed, json_path, precision, device):
    """Does --motion set the speed? Objects' measured speed at each motion level."""

    from filmstrip.eval.motion_strength import MotionSuiteConfig, run_motion_suite

    try:
        values = tuple(float(v) for v in levels.split(","))
    except ValueError:
        raise click.BadParameter(
            f"{levels!r}: numbers in [0, 1], comma-separated", param_hint="--levels"
        ) from None
    pipe = shapes_pipeline(checkpoint, device=device, precision=precision)
    if "motion" not in dict(pipe.dit.cfg.vectors):
        raise InputError(
            f"{checkpoint or 'the bundled t2v'}: this model was not trained with a motion condition, which `eval motion` "
            "measures (recipes/control/01_motion.toml trains one)"
        )
    cfg = MotionSuiteConfig(levels=values, num_prompts=prompts)
    result = run_motion_suite(pipe, cfg, GenerateConfig(steps=steps, text_scale=text_scale, seed=seed))
    if json_path:
        _save_json(json_path, result)
    click.echo(f"{prompts} prompts per level; speed in frame short sides per second")
    click.echo("level  asked  measured  direction  objects")
    for row in result["levels"]:
        level = "free" if row["level"] is None else f"{row['level']:.2f}"
        asked = "  -  " if row["asked"] is None else f"{row['asked']:.3f}"
        click.echo(f"{level:>5}  {asked}  {row['speed']:8.3f}  {row['direction']:9.1%}  {row['objects']:7d}")


@eval_group.command("camera")
@T2V_CHECKPOINT
@count_option("--prompts", 10, "Fresh prompts per camera path.")
@click.option(
    "--random-paths",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Held-out random paths besides the presets.",
)
@click.option("--steps", default=GenerateConfig.steps, show_default=True)
@click.option("--cfg", "text_scale", default=GenerateConfig.text_scale, show_default=True)
@click.option("--seed", default=GenerateConfig.seed, show_default=True)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write all rows here."
)
@PRECISION
@DEVICE
def eval_camera(checkpoint, prompts, random_paths, steps, text_scale, seed, json_path, precision, device):
    """Does --camera move the camera? The path read back from the background, per path."""

    import numpy as np

    from filmstrip.eval.camera import CameraSuiteConfig, run_camera_suite

    pipe = shapes_pipeline(checkpoint, device=device, precision=precision)
    if "camera" not in dict(pipe.dit.cfg.vectors):
        raise InputError(
            f"{checkpoint or 'the bundled t2v'}: this model was not trained with a camera condition, which `eval camera` "
            "measures (recipes/control/02_camera.toml trains one)"
        )
    cfg = CameraSuiteConfig(prompts_per_path=prompts, random_paths=random_paths)
    result = run_camera_suite(pipe, cfg, GenerateConfig(steps=steps, text_scale=text_scale, seed=seed))
    if json_path:
        _save_json(json_path, result)
    click.echo(f"{prompts} prompts per path; errors per frame step, and at the last frame")
    click.echo(f"{'path':<11} px/frame  scale/frame  final px  final scale  directions")
    for name, m in result["paths"].items():
        if not name.startswith("random"):
            click.echo(
                f"{name:<11} {m['px_per_frame']:8.3f}  {m['scale_per_frame']:11.4f}  {m['final_px']:8.2f}  {m['final_scale']:11.3f}  {m['direction']:9.1%}"
            )
    held = [m for name, m in result["paths"].items() if name.startswith("random")]
    if held:
        mean = {k: float(np.mean([m[k] for m in held])) for k in held[0]}
        click.echo(
            f"{'random (' + str(len(held)) + ')':<11} {mean['px_per_frame']:8.3f}  {mean['scale_per_frame']:11.4f}  {mean['final_px']:8.2f}  {mean['final_scale']:11.3f}  {mean['direction']:9.1%}"
        )


@eval_group.command("structure")
@T2V_CHECKPOINT
@click.option(
    "--control-net",
    "controlnet_path",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The ControlNet to measure (from `filmstrip train controlnet`).",
)
@click.option("--control-scale", default=1.0, show_default=True, help="Its strength (0: the base model).")
@count_option("--prompts", 50, "Fresh scenes; their masks are the maps.")
@click.option("--steps", default=GenerateConfig.steps, show_default=True)
@click.option("--cfg", "text_scale", default=CONTROL_TEXT_SCALE, show_default=True)
@click.option("--seed", default=GenerateConfig.seed, show_default=True)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write all rows here."
)
@VAE_CEILING
@PRECISION
@DEVICE
def eval_structure(
    checkpoint,
    controlnet_path,
    control_scale,
    prompts,
    steps,
    text_scale,
    seed,
    json_path,
    ceiling,
    precision,
    device,
):
    """Do objects go where the structure maps put them? Mask IoU on held-out scenes."""

    from filmstrip.cli.generate import with_controlnet
    from filmstrip.eval.structure import StructureSuiteConfig, run_structure_suite, structure_ceiling

    pipe = with_controlnet(
        shapes_pipeline(checkpoint, device=device, precision=precision), controlnet_path, control_scale
    )
    gen = GenerateConfig(steps=steps, text_scale=text_scale, seed=seed)
    suite = StructureSuiteConfig(num_prompts=prompts)
    result = run_structure_suite(pipe, suite, gen)
    if ceiling:
        result["vae_ceiling_iou"] = structure_ceiling(pipe, suite)
    if json_path:
        _save_json(json_path, result)
    a = result["adherence"]
    click.echo(f"{prompts} held-out scenes, control scale {control_scale:g}")
    click.echo(f"  mask IoU {result['iou']:.3f}")
    if ceiling:
        click.echo(f"  mask IoU of the scenes' own clips through the VAE: {result['vae_ceiling_iou']:.3f}")
    click.echo(
        f"  prompts: colour {a['colour']:.1%}  shape {a['shape']:.1%}  direction {a['direction']:.1%}  count {a['count']:.1%}"
    )


@eval_group.command("conditioning")
@T2V_CHECKPOINT
@click.option(
    "--mode",
    "modes",
    type=click.Choice(["i2v", "first-last", "last", "extend", "v2v", "edit"]),
    multiple=True,
    default=("i2v", "first-last", "extend"),
    show_default=True,
    help="What is given: the first frame, the first and last, the last alone, the first --context "
    "frames; or a clip to recolour by video-to-video (at each --strengths) or by inversion.",
)
@click.option(
    "--strengths", default="0.2,0.4,0.6,0.8,1.0", show_default=True, help="v2v: SDEdit strengths to measure."
)
@count_option("--scenes", 100, "Fresh shapes scenes, one video each.")
@click.option("--frames", default=GenerateConfig.frames, show_default=True)
@click.option("--size", default=GenerateConfig.height, show_default=True)
@click.option("--steps", default=GenerateConfig.steps, show_default=True)
@click.option(
    "--cfg", "text_scale", type=float, default=None, help="Text guidance scale [default: 4; edit: 2]."
)
@click.option(
    "--image-cfg",
    "image_scale",
    type=float,
    default=None,
    help="Image guidance scale [default: 6 when a keyframe follows frame 0, 4 for extend, else 1].",
)
@click.option("--context", default=9, show_default=True, help="extend: frames of the truth given (4k + 1).")
@click.option(
    "--given-speed",
    is_flag=True,
    help="extend, with a model trained with a motion condition: tell it each given clip's speed "
    "(its objects' mean speed as the frames show it).",
)
@click.option(
    "--edit-strength",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="edit: how far each clip is inverted (1: to pure noise) [default: 0.8].",
)
@click.option(
    "--ceiling",
    is_flag=True,
    help="extend and edit: also score what a perfect model gives through the VAE (the truth's "
    "continuation, the perfect recolouring).",
)
@click.option(
    "--share/--no-share",
    default=True,
    show_default=True,
    help="v2v and edit: share the clip's attention with the edit (--no-share: plain SDEdit, or "
    "regeneration from the inverted noise alone).",
)
@LAG
@click.option("--seed", default=GenerateConfig.seed, show_default=True)
@click.option(
    "--grid",
    nargs=2,
    default=None,
    metavar="TEXT_SCALES IMAGE_SCALES",
    help="Instead: image to video at every pair of scales, e.g. --grid 2,4,6 1,1.5,2.5.",
)
@click.option(
    "--grid-mode",
    type=click.Choice(["i2v", "last"]),
    default="i2v",
    show_default=True,
    help="What the grid gives: the first frame, or the last frame alone.",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write all rows here."
)
@PRECISION
@DEVICE
@COMPILE
def eval_conditioning(
    checkpoint,
    modes,
    strengths,
    scenes,
    frames,
    size,
    steps,
    text_scale,
    image_scale,
    context,
    given_speed,
    edit_strength,
    ceiling,
    share,
    lag,
    seed,
    grid,
    grid_mode,
    json_path,
    precision,
    device,
    compile_,
):
    """Image to video, first + last frame and extension on fresh `shapes` scenes: are the given
    frames kept where they were given, and does the motion follow the prompt?"""

    from dataclasses import replace

    from filmstrip.eval.conditioning import ConditionSuite, run_conditioning
    from filmstrip.pipelines.generate import GenerateConfig

    suite = ConditionSuite(num_scenes=scenes, frames=frames, size=size, context=context)
    gen = GenerateConfig(
        frames=frames,
        height=size,
        width=size,
        steps=steps,
        text_scale=GenerateConfig.text_scale if text_scale is None else text_scale,
        image_scale=image_scale,
        seed=seed,
        lag=lag,
    )
    # Lists of numbers are read before the model loads, so a typo costs nothing.
    levels = _numbers(strengths, "--strengths") if "v2v" in modes else []
    scales = (_numbers(grid[0], "--grid"), _numbers(grid[1], "--grid")) if grid else None
    if given_speed and ("extend" not in modes or grid):
        raise InputError(
            "--given-speed tells the speed of a clip to extend: use it with --mode extend and no --grid"
        )
    pipe = shapes_pipeline(checkpoint, device=device, precision=precision, compile=compile_)
    if given_speed and "motion" not in dict(pipe.dit.cfg.vectors):
        raise InputError(
            f"{checkpoint or 'the bundled t2v'}: this model was not trained with a motion condition, which --given-speed "
            "tells it (recipes/probes/causal_speed.toml trains one)"
        )
    results: dict = {}
    if scales:
        from filmstrip.eval.conditioning import guidance_grid

        results["grid"] = guidance_grid(pipe, *scales, suite, gen, mode=grid_mode)
        given = "psnr_first" if grid_mode == "i2v" else "end_error_mean"
        click.echo(f"{'text':>5} {'image':>5}  {given:>14}  direction  colour  shape  flicker")
        for r in results["grid"]:
            click.echo(f"{r['text_scale']:5g} {r['image_scale']:5g}  {r[given]:14.2f}  {r['direction']:9.1%}"
                       f"  {r['colour']:6.1%} {r['shape']:6.1%}  {r['flicker']:7.2f}")  # fmt: skip
        modes = ()
    from filmstrip.eval.conditioning import inversion_edit, v2v_curve
    from filmstrip.pipelines.edit import EDIT_STRENGTH, EDIT_TEXT_SCALE, SHARING

    edit_gen = replace(gen, text_scale=EDIT_TEXT_SCALE if text_scale is None else text_scale)
    edit_options = {"sharing": SHARING if share else None,
                    "strength": EDIT_STRENGTH if edit_strength is None else edit_strength}  # fmt: skip

    def show(label: str, summary: dict) -> None:
        click.echo(f"{label}: " + ", ".join(f"{k} {v:.3g}" for k, v in summary.items()))

    for mode in modes:
        if mode == "v2v":
            results[mode] = v2v_curve(pipe, levels, suite, gen, sharing=edit_options["sharing"])
            for row in results[mode]:
                show(f"v2v {row['strength']:g}", {k: v for k, v in row.items() if k != "strength"})
            continue
        results[mode] = (
            inversion_edit(pipe, suite, edit_gen, **edit_options)
            if mode == "edit"
            else run_conditioning(pipe, mode, suite, gen, given_speed=given_speed and mode == "extend")
        )
        show(mode, results[mode]["summary"])
        if ceiling and mode in ("extend", "edit"):
            from filmstrip.eval.conditioning import vae_ceiling

            results[f"{mode}_vae_ceiling"] = vae_ceiling(pipe, mode, suite)
            show(f"{mode}, a perfect model through the VAE", results[f"{mode}_vae_ceiling"])
    if json_path:
        _save_json(json_path, results)


def _numbers(text: str, hint: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: give a comma-separated list of numbers", param_hint=hint
        ) from None


@eval_group.command("fvd")
@click.argument("dir_a", type=click.Path(path_type=Path))
@click.argument("dir_b", type=click.Path(path_type=Path))
@click.option(
    "--frames",
    default=16,
    show_default=True,
    help="Frames of each clip I3D sees, from its start (0: whole clips; at least 9).",
)
@click.option("--batch", default=8, show_default=True, help="Clips per I3D forward.")
def eval_fvd(dir_a, dir_b, frames, batch):
    """Fréchet Video Distance between two folders of clips (I3D, Kinetics-400); the last
    line printed is the number."""
    from filmstrip.eval.frechet import warn_small_sets
    from filmstrip.eval.fvd import ClipFolder, fvd, i3d_features
    from filmstrip.eval.i3d import INPUT_SIZE, load_i3d

    folders = [ClipFolder(d, frames or None, batch) for d in (dir_a, dir_b)]  # checks both first
    model = load_i3d()
    features = []
    for folder in folders:
        features.append(i3d_features(model, folder, folder.frames, progress=True, total=len(folder.files)))
        shapes = ", ".join(f"{t}x{h}x{w}" for t, h, w in sorted(folder.shapes))
        click.echo(
            f"{folder.root}: {len(features[-1])} clips ({shapes}, resampled to {INPUT_SIZE}x{INPUT_SIZE}); "
            f"{len(folder.skipped)} unreadable or too short, skipped"
        )
        for reason in folder.skipped[:3]:
            click.echo(f"  skipped: {reason}")
    warn_small_sets((len(features[0]), len(features[1])), features[0].shape[1], "FVD", "clips")
    click.echo(f"{fvd(*features):.4f}")


@eval_group.command("fid")
@click.argument("dir_a", type=click.Path(path_type=Path))
@click.argument("dir_b", type=click.Path(path_type=Path))
@click.option("--batch", default=32, show_default=True, help="Images per Inception forward.")
def eval_fid(dir_a, dir_b, batch):
    """Fréchet Inception Distance between two folders of images or clips (every frame of a
    clip counts as an image); the last line printed is the number."""
    from filmstrip.eval.fid import INPUT_SIZE, ImageFolder, fid, inception_features, load_inception
    from filmstrip.eval.frechet import warn_small_sets

    folders = [ImageFolder(d, batch) for d in (dir_a, dir_b)]  # checks both first
    model = load_inception()
    features = []
    for folder in folders:
        features.append(inception_features(model, folder, progress=True))
        click.echo(
            f"{folder.root}: {folder.count} images and frames (resampled to {INPUT_SIZE}x{INPUT_SIZE}); "
            f"{len(folder.skipped)} unreadable files skipped"
        )
        for reason in folder.skipped[:3]:
            click.echo(f"  skipped: {reason}")
    warn_small_sets((len(features[0]), len(features[1])), features[0].shape[1], "FID", "images")
    click.echo(f"{fid(*features):.4f}")


JSON_NUMBERS = click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the numbers here.",
)


def sampling_options(command):
    """--steps, --cfg and --seed, as `generate` takes them."""
    command = click.option("--seed", default=GenerateConfig.seed, show_default=True)(command)
    command = click.option("--cfg", "text_scale", default=GenerateConfig.text_scale, show_default=True)(
        command
    )
    return click.option("--steps", default=GenerateConfig.steps, show_default=True)(command)


@eval_group.command("report")
@T2V_CHECKPOINT
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("report.html"),
    show_default=True,
)
@click.option(
    "--samples",
    type=click.IntRange(min=2),
    default=64,
    show_default=True,
    help="Prompts, half seen and half held out; one video each.",
)
@click.option("--frames", default=GenerateConfig.frames, show_default=True)
@click.option("--size", default=GenerateConfig.height, show_default=True)
@sampling_options
@click.option(
    "--no-cache", is_flag=True, help="Score every set afresh instead of reusing ~/.cache/filmstrip/report."
)
@JSON_NUMBERS
@PRECISION
@DEVICE
@COMPILE
def eval_report(
    checkpoint,
    output,
    samples,
    frames,
    size,
    steps,
    text_scale,
    seed,
    no_cache,
    json_path,
    precision,
    device,
    compile_,
):
    """One self-contained HTML page for a `shapes` text-to-video model: FVD, FID, LPIPS, the
    temporal dimensions and the physics probe beside real clips and the VAE's round trip,
    prompt adherence, samples, speed."""
    import tempfile

    from filmstrip.checkpoint import resolve, write_json_atomic
    from filmstrip.eval.report import ReportConfig, build_report
    from filmstrip.eval.report_page import render_html

    if output.suffix.lower() not in (".html", ".htm"):
        raise click.BadParameter(
            f"{output}: the report is an HTML page; name it .html", param_hint="--output"
        )
    cfg = ReportConfig(
        samples=samples, frames=frames, size=size, steps=steps, text_scale=text_scale, seed=seed
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    pipe = shapes_pipeline(checkpoint, device=device, precision=precision, compile=compile_)
    name = str(resolve(checkpoint, "t2v"))
    numbers, clips = build_report(
        pipe, cfg, cache=Path(tempfile.mkdtemp()) if no_cache else None, model_name=name
    )
    page = render_html(numbers, clips)
    write_text_atomic(output, page)  # an interrupted run leaves the old page
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(json_path, numbers)
    for row, r in numbers["rows"].items():
        click.echo(
            f"{row:<6} FVD {r['fvd']:8.1f}  FID {r['fid']:7.2f}  LPIPS t->t+1 {r['step_lpips']:.4f}  "
            f"smoothness {r['motion_smoothness']:.4f}  physics {r['physics']:.1%} ({r['physics_passed']:.1%} pass)"
        )
    a = numbers["adherence"]
    for part in ("seen", "held_out"):
        if a[part]:
            click.echo(
                f"{part:<9}"
                + "  ".join(f"{k} {a[part][k]:.1%}" for k in ("colour", "shape", "direction", "count"))
            )
    click.echo(f"{numbers['times']['total_s']:.0f} s; wrote {output}")


@eval_group.command("dataset")
@T2V_CHECKPOINT
@click.option("--data", required=True, help="Held-out clips with captions: shapes, digits or folder:PATH.")
@click.option(
    "--train-data",
    default=None,
    help="Real clips for the floor (default: the train split of shapes / digits; none for folders).",
)
@count_option("--clips", 64, "Held-out clips, one generated video each.")
@FRAMES
@size_option(
    "Clips are generated and scored at this size, N or WxH [default: the size the model trained on most]."
)
@sampling_options
@JSON_NUMBERS
@PRECISION
@DEVICE
@COMPILE
def eval_dataset(
    checkpoint,
    data,
    train_data,
    clips,
    frames,
    size,
    steps,
    text_scale,
    seed,
    json_path,
    precision,
    device,
    compile_,
):
    """Generate a video for each held-out clip's caption of any dataset and score the set
    against those clips: FVD, FID, LPIPS between frames, temporal dimensions (physics on shapes)."""
    from filmstrip.checkpoint import write_json_atomic
    from filmstrip.eval.dataset_eval import DatasetEvalConfig, evaluate_on_dataset
    from filmstrip.pipelines.generate import asked_shape, load_pipeline

    pipe = load_pipeline(checkpoint, device=device, precision=precision, compile=compile_)
    frames, height, width = asked_shape(pipe, frames, size)
    cfg = DatasetEvalConfig(data, train_data, clips=clips, frames=frames, size=height, width=width,
                            steps=steps, text_scale=text_scale, seed=seed)  # fmt: skip
    rows = evaluate_on_dataset(pipe, cfg)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(json_path, {"config": vars(cfg), "rows": rows})
    for name, r in rows.items():
        extra = f"  physics {r['physics']:.1%}" if "physics" in r else ""
        click.echo(
            f"{name:<6} FVD {r['fvd']:8.1f}  FID {r['fid']:7.2f}  LPIPS t->t+1 {r['step_lpips']:.4f}  "
            f"subject {r['subject_consistency']:.4f}  smoothness {r['motion_smoothness']:.4f}  "
            f"motion {r['motion']:.2f} px{extra}"
        )


@eval_group.command("long")
@click.option(
    "--strategy",
    "strategies",
    multiple=True,
    default=(
        "naive",
        "window",
        "sink",
        "sink-continue",
        "noisy-context",
        "pyramid",
        "sliding",
        "sliding-freenoise",
    ),
    show_default=True,
    help="Long-video strategies to compare (see filmstrip/eval/long_suite.py).",
)
@count_option("--prompts", 8, "Training captions, one minute-long video each.")
@click.option("--seconds", default=60.0, show_default=True)
@click.option("--steps", default=8, show_default=True, help="Steps per latent frame of the causal rollouts.")
@click.option("--sliding-steps", default=20, show_default=True, help="Steps of the sliding-window baseline.")
@click.option("--seed", default=0, show_default=True)
@click.option("--causal", "causal_path", default="t2v_causal", show_default=True, help="The causal model.")
@click.option(
    "--bidirectional", "bidir_path", default="t2v", show_default=True, help="The bidirectional model."
)
@click.option(
    "--switches",
    default=0,
    show_default=True,
    help="Instead: this many prompt switches (one-object prompts, the second at 20 s of 40): how soon it shows.",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write all rows here."
)
@PRECISION
@DEVICE
def eval_long(
    strategies,
    prompts,
    seconds,
    steps,
    sliding_steps,
    seed,
    causal_path,
    bidir_path,
    switches,
    json_path,
    precision,
    device,
):
    """Drift over a long video: first- vs last-10-second accuracy of each strategy, scored
    window by window (colour, shape, count, direction up to bounces, size and speed kept)."""

    import numpy as np

    from filmstrip.eval.long_suite import STRATEGIES, LongSuiteConfig, run_long_suite
    from filmstrip.eval.prompt_suite import SuiteConfig, seen_prompts

    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise click.BadParameter(f"{unknown}; choose from {', '.join(STRATEGIES)}", param_hint="--strategy")
    needed = {STRATEGIES[s][0] for s in strategies}
    cfg = LongSuiteConfig(seconds=seconds, steps=steps, sliding_steps=sliding_steps)
    paths = {"causal": causal_path, "bidirectional": bidir_path}
    pipes = {m: shapes_pipeline(paths[m], device=device, precision=precision) for m in needed}
    if switches:
        from filmstrip.eval.long_suite import prompt_pairs, run_switches

        pairs = prompt_pairs(seen_prompts(SuiteConfig(), 20 * switches), switches)
        results = run_switches(pipes, strategies, pairs, cfg, seed=seed)
        for name, r in results.items():
            shown = [lag for lag in r["lags"] if lag is not None]
            mean = f"{np.mean(shown):.2f} s" if shown else "-"
            click.echo(f"{name:>18} | switched within 2 s: {100 * r['within_2s']:5.1f}% | mean lag {mean} | "
                       f"never: {len(r['lags']) - len(shown)} of {len(r['lags'])}")  # fmt: skip
        if json_path:
            _save_json(json_path, results)
        return
    cases = seen_prompts(SuiteConfig(), prompts)
    results = run_long_suite(pipes, strategies, cases, cfg, seed)
    click.echo(f"{'strategy':>18} | first {cfg.drift.span:g} s | last {cfg.drift.span:g} s | kept | last: "
               + " ".join(f"{c:>9}" for c in ("colour", "shape", "count", "direction", "size", "speed")))  # fmt: skip
    for name, r in results.items():
        last = " ".join(
            f"{100 * r['last'][c]:8.1f}%" for c in ("colour", "shape", "count", "direction", "size", "speed")
        )
        click.echo(f"{name:>18} | {100 * r['first']['accuracy']:9.1f}% | {100 * r['last']['accuracy']:8.1f}% | "
                   f"{100 * r['kept']:3.0f}% | {last}")  # fmt: skip
    if json_path:
        _save_json(json_path, results)
