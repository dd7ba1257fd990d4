"""`filmstrip world`: record game play and import episodes for world models."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("world")
def world() -> None:
    """Record and import game episodes for world models."""


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
@click.option("--seed", default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True)
def record_cmd(game: str, steps: int, policy: str, size: int, seed: int, output: Path) -> None:
    """Play a game and write its episodes (NAME.npz + NAME.mp4) to OUTPUT."""
    import numpy as np

    from filmstrip.world.episodes import load_episode
    from filmstrip.world.record import RecordConfig, record

    paths = record(RecordConfig(game=game, steps=steps, policy=policy, size=size, seed=seed), output)
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
