"""`filmstrip world`: record game play and import episodes for world models."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from filmstrip.cli import echo_main
from filmstrip.cli.generate import DEVICE
from filmstrip.cli.recipe_options import RUN_DECLS, Opt, count_option, recipe_options, trainer_opts
from filmstrip.world.train import WorldRecipe


@click.group("world")
def world() -> None:
    """Record game play, train world models on it, and evaluate them."""


@world.command("record")
@click.option(
    "--game", default="pong", show_default=True, help="pong, breakout, boxing, freeway, space_invaders."
)
@click.option(
    "--steps", default=2000, show_default=True, help="Steps in all, over as many episodes as it takes."
)
@click.option(
    "--policy", default="mixed", show_default=True, type=click.Choice(["random", "scripted", "mixed"])
)
@click.option("--size", default=64, show_default=True, help="Frames are resized to size x size.")
@click.option(
    "--max-episode-steps",
    default=1000,
    show_default=True,
    help="Longer episodes are cut here (a cut is not an end); a game of Pong to 21 takes about 2,000.",
)
@click.option("--seed", default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True)
def record_cmd(
    game: str, steps: int, policy: str, size: int, max_episode_steps: int, seed: int, output: Path
) -> None:
    """Play a game and write its episodes (NAME.npz + NAME.mp4) to OUTPUT."""
    import numpy as np

    from filmstrip.world.episodes import load_episode
    from filmstrip.world.record import RecordConfig, record

    paths = record(
        RecordConfig(
            game=game, steps=steps, policy=policy, size=size, max_episode_steps=max_episode_steps, seed=seed
        ),
        output,
    )
    rewards = np.concatenate([load_episode(p).rewards for p in paths])
    click.echo(f"{len(paths)} episodes, {steps} steps, reward {rewards.sum():g} in {output}")


@world.command("import")
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
def import_cmd(src: Path, out: Path) -> None:
    """Check a folder of episodes (your own frames + actions) and write the good ones to OUT."""
    from filmstrip.world.episodes import import_folder

    written, skipped = import_folder(src, out)
    for reason in skipped:
        click.echo(f"skipped: {reason}")
    click.echo(f"{written} episodes imported, {len(skipped)} skipped")


@world.command("train")
@recipe_options(
    WorldRecipe,
    [
        Opt(("--data",), "data", "Folder of episodes (world record / world import).", {"type": click.Path()}),
        Opt(
            ("--held-out",),
            "held_out",
            "Episodes for previews and the shipped start contexts.",
            {"type": click.Path()},
        ),
        Opt(
            ("--model",),
            "model",
            "flow (the world model), convlstm (the baseline), latent-actions (learned from unlabeled "
            "frames) or heads (the reward and end heads of --init, trained alone).",
            {"type": click.Choice(["flow", "convlstm", "latent-actions", "heads"])},
        ),
        Opt(
            ("--init",),
            "init",
            "A trained world model to continue (a folder, or world_pong / world_doom).",
            {"show_default": False},
        ),
        Opt(("--context",), "context", "Past frames the model sees."),
        Opt(
            RUN_DECLS,
            "run",
            "Run folder; an existing run resumes.",
            {"type": click.Path(file_okay=False), "show_default": False},
        ),
        *trainer_opts(),
    ],
)
def train_cmd(recipe: WorldRecipe) -> None:
    """Train an action-conditioned world model (or the ConvLSTM baseline) on recorded episodes."""
    from filmstrip.world.train import train_world

    echo_main(f"model: {train_world(recipe, log=echo_main)}")


@world.command("label")
@click.argument("latent_actions", type=click.Path(path_type=Path))
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
def label_cmd(latent_actions: Path, src: Path, out: Path) -> None:
    """Replace the actions of the episodes in SRC by a trained latent action model's codes
    (a world model trained on OUT needs no action labels), report how the codes line up
    with the true actions, and write OUT/action_map.json: each true action's most common
    code, what `world eval --action-map` drives the latent-action world model with."""
    from filmstrip.checkpoint import write_json_atomic
    from filmstrip.world.evaluate import action_effects, pong_paddle_motion
    from filmstrip.world.latent_actions import (
        best_mapping,
        driving_map,
        label,
        load_latent_actions,
        purity,
        save_labelled,
    )
    from filmstrip.world.train import Transitions

    lam = load_latent_actions(latent_actions)
    data = Transitions(src, lam.cfg.context)
    true = np.concatenate([e.actions for e in data.episodes])
    codes = label(lam, data)
    # Fewer codes than keys rule out a one-to-one map, not the labels nor the driving map.
    one_to_one = data.num_actions <= lam.num_actions
    mapping, accuracy = (
        best_mapping(true, codes, data.num_actions, lam.num_actions) if one_to_one else (None, None)
    )
    report = {"one_to_one": mapping, "one_to_one_accuracy": accuracy}
    effects = action_effects(Path(src).resolve().name)  # games are named by their folder, as in training
    if effects is not None:  # a game whose actions fall into groups of one effect each
        names, groups = effects
        by_effect, effect_accuracy = best_mapping(groups[true], codes, len(names), lam.num_actions)
        report.update(
            effects=dict(zip(names, by_effect.values(), strict=True)),
            effects_accuracy=effect_accuracy,
            effects_purity=purity(groups[true], codes, lam.num_actions),
        )
        # What the paddle visibly did bounds what any code can tell from the frames: a key
        # pressed against a wall, or a paddle still coasting, looks like another key.
        seen = np.concatenate([pong_paddle_motion(e.frames) for e in data.episodes])
        ok = seen >= 0
        report.update(
            observed_accuracy=best_mapping(seen[ok], codes[ok], len(names), lam.num_actions)[1],
            observed_purity=purity(seen[ok], codes[ok], lam.num_actions),
            observed_agrees_with_pressed=float((seen[ok] == groups[true][ok]).mean()),
        )
    report["driving_map"] = driving_map(true, codes, data.num_actions, lam.num_actions)
    save_labelled(data, codes, lam.num_actions, out)
    write_json_atomic(out / "action_map.json", report)
    click.echo(f"{len(data)} transitions labelled with {lam.num_actions} latent actions in {out}")
    if one_to_one:
        click.echo(f"best one-to-one map true -> latent {mapping}: agrees on {100 * accuracy:.1f}%")
    else:
        click.echo(f"no one-to-one map: {data.num_actions} true actions, {lam.num_actions} latent ones")
    if effects is not None:
        click.echo(
            f"by effect {report['effects']}: agrees on {100 * report['effects_accuracy']:.1f}%; "
            f"purity {100 * report['effects_purity']:.1f}%"
        )
        click.echo(
            f"against the paddle's visible motion: agrees on {100 * report['observed_accuracy']:.1f}%, "
            f"purity {100 * report['observed_purity']:.1f}% (the motion matches the pressed key "
            f"{100 * report['observed_agrees_with_pressed']:.1f}% of the time)"
        )
    click.echo(f"driving map (true action -> latent): {report['driving_map']} in {out / 'action_map.json'}")


@world.command("eval")
@click.argument("episodes", type=click.Path(path_type=Path))
@click.option(
    "-c",
    "--checkpoint",
    default=None,
    help="The world model [default: the bundled one of --game: Pong or Doom].",
)
@click.option(
    "--convlstm",
    default=None,
    type=click.Path(path_type=Path),
    help="A trained ConvLSTM baseline to compare.",
)
@click.option("--steps", default=2, show_default=True, help="Flow steps per frame.")
@count_option("--starts", 64, "Rollout starts over the held-out episodes.")
@click.option(
    "--context-noise", default=0.0, show_default=True, help="Noise put on the context at play time."
)
@click.option("--bf16/--fp32", default=False, show_default=True)
@click.option(
    "--heads/--no-heads",
    default=True,
    show_default=True,
    help="Also score the reward/end heads (on generated frames: one model step per transition).",
)
@click.option(
    "--action-map",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Drive a latent-action world model: the action_map.json `world label` wrote.",
)
@click.option(
    "--json",
    "json_out",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the numbers here.",
)
@DEVICE
def eval_cmd(
    json_out: Path | None,
    episodes: Path,
    checkpoint: str | None,
    convlstm: Path | None,
    steps: int,
    starts: int,
    context_noise: float,
    bf16: bool,
    heads: bool,
    action_map: Path | None,
    device: str,
) -> None:
    """Fidelity (next-frame and rollout PSNR against copy-the-last-frame and the ConvLSTM),
    action fidelity (Pong paddles; Doom turns, beside the recorded game's own score) and the
    reward/end heads' precision and recall on EPISODES."""
    import json

    from filmstrip.errors import InputError
    from filmstrip.world.convlstm import load_convlstm
    from filmstrip.world.evaluate import (
        FidelityConfig,
        doom_action_fidelity,
        fidelity,
        head_scores,
        pong_action_fidelity,
    )
    from filmstrip.world.model import load_world_model
    from filmstrip.world.rollout import SampleConfig, convlstm_predictor, copy_last, flow_predictor
    from filmstrip.world.train import Transitions

    model = load_world_model(checkpoint, device)
    data = Transitions(episodes, model.cfg.context)
    drive = _driving_map(action_map, data.num_actions, model.cfg.num_actions) if action_map else None
    if data.size != model.cfg.size or (drive is None and data.num_actions != model.cfg.num_actions):
        raise InputError(
            f"{episodes}: episodes of {data.num_actions} actions at {data.size} px, but the world model "
            f"({model.cfg.game}) takes {model.cfg.num_actions} actions at {model.cfg.size} px"
        )
    if drive is not None:  # the episodes' true actions, as the latent-action model knows them
        for e in data.episodes:
            e.actions = np.asarray(drive, np.int64)[e.actions]
    predict = flow_predictor(model, SampleConfig(steps=steps, context_noise=context_noise, bf16=bf16))
    predictors = {"world model": predict, "copy last frame": copy_last}
    if convlstm is not None:
        predictors["convlstm"] = convlstm_predictor(load_convlstm(convlstm, device))
    results = {"fidelity": fidelity(predictors, data, FidelityConfig(starts=starts))}
    for name, scores in results["fidelity"].items():
        click.echo(f"{name:>16}: " + "  ".join(f"{k} {v:.2f} dB" for k, v in scores.items()))
    if model.cfg.game.startswith("pong"):
        results["actions"] = pong_action_fidelity(predict, data, drive=drive)
        click.echo("actions: " + json.dumps(results["actions"]))
    elif model.cfg.game.startswith("doom") and drive is None:  # (Doom latent actions: not measured)
        results["actions"] = doom_action_fidelity(predict, data)
        results["actions_recorded"] = doom_action_fidelity(None, data)  # what the measure gives the game
        for key in ("actions", "actions_recorded"):
            click.echo(f"{key}: " + json.dumps(results[key]))
    if heads:
        results["heads_real"] = head_scores(model, data)
        results["heads_generated"] = head_scores(model, data, predict)
    for key in ("heads_real", "heads_generated") if heads else ():
        click.echo(f"{key}: " + json.dumps({k: round(v, 3) for k, v in results[key].items()}))
    if json_out is not None:
        from filmstrip.checkpoint import write_json_atomic

        write_json_atomic(json_out, results)


def _driving_map(path: Path, num_true: int, num_model: int) -> list[int]:
    import json

    try:
        drive = json.loads(path.read_text())["driving_map"]
    except (OSError, ValueError, KeyError) as err:
        raise click.BadParameter(f"{path}: not an action_map.json of `world label` ({err})") from None
    if len(drive) != num_true or not all(isinstance(a, int) and 0 <= a < num_model for a in drive):
        raise click.BadParameter(
            f"{path}: maps {len(drive)} actions into {num_model}; the episodes have {num_true} and the "
            f"model takes ids below {num_model}",
            param_hint="--action-map",
        )
    return drive


@click.command("play")
@click.option("--game", default="pong", show_default=True, help="The keymap: pong, breakout or doom.")
@click.option(
    "-c",
    "--checkpoint",
    default=None,
    help="The world model [default: the bundled one of --game: Pong or Doom].",
)
@click.option(
    "--steps",
    default=2,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Flow steps per frame (1-4 keep play live).",
)
@click.option(
    "--fps",
    default=None,
    type=click.FloatRange(min=0),
    help="Frames per second [default: the game's; 0: as fast as it runs].",
)
@click.option("--frames", default=None, type=click.IntRange(min=1), help="Stop after this many frames.")
@click.option(
    "--scale", default=6, show_default=True, type=click.IntRange(min=1), help="Window pixels per frame pixel."
)
@click.option(
    "--record",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Save the session as a video.",
)
@click.option("--seed", default=0, show_default=True)
@click.option("--bf16/--fp32", default=True, show_default=True, help="bf16 where the device runs it fast.")
@DEVICE
def play_cmd(
    game: str,
    checkpoint: str | None,
    steps: int,
    fps: float | None,
    frames: int | None,
    scale: int,
    record: Path | None,
    seed: int,
    bf16: bool,
    device: str,
) -> None:
    """Play a world model live: the keyboard picks the action, the model makes every frame.
    Headless: SDL_VIDEODRIVER=dummy filmstrip play --frames 100."""

    from filmstrip.io import check_output_path
    from filmstrip.precision import bf16_is_fast
    from filmstrip.world.env import WorldModelEnv
    from filmstrip.world.model import load_world_model
    from filmstrip.world.play import BUNDLED_MODELS, KEYMAPS, PlayConfig, play
    from filmstrip.world.rollout import SampleConfig

    # Refuse a bad request before the model loads.
    if game not in KEYMAPS:
        raise click.BadParameter(
            f"no keymap for {game!r}: choose from {', '.join(KEYMAPS)}", param_hint="--game"
        )
    if checkpoint is None and game not in BUNDLED_MODELS:
        raise click.UsageError(f"no bundled world model plays {game}: give one with --checkpoint")
    if record is not None:
        check_output_path(record)
    model = load_world_model(checkpoint or BUNDLED_MODELS[game], device)
    on = next(model.parameters()).device
    env = WorldModelEnv(model, SampleConfig(steps=steps, bf16=bf16 and bf16_is_fast(on)))
    stats = play(env, game, PlayConfig(scale=scale, fps=fps, frames=frames, seed=seed), record=record)
    click.echo(
        f"{stats.frames} frames in {stats.seconds:.1f} s ({stats.fps:.1f} frames/s), reward {stats.total_reward:+g}"
    )
    if record is not None:
        click.echo(f"recorded {record}")
