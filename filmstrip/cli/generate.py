"""`filmstrip generate`: a video from a prompt."""

from __future__ import annotations

from pathlib import Path

import click

from filmstrip.pipelines.generate import GenerateConfig

T2V_CHECKPOINT = click.option(
    "--checkpoint",
    "-c",
    type=click.Path(path_type=Path),
    default=None,
    help="Text-to-video model directory [default: the bundled model].",
)
LAG = click.option(
    "--lag",
    default=GenerateConfig.lag,
    show_default=True,
    help="Pyramid schedule: how far the last frame trails the first (for --frame-noise models).",
)


@click.command()
@click.argument("prompt")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("outputs/clip.mp4"),
    show_default=True,
)
@T2V_CHECKPOINT
@click.option("--frames", default=GenerateConfig.frames, show_default=True)
@click.option("--fps", default=8.0, show_default=True)
@click.option(
    "--size", default=GenerateConfig.height, show_default=True, help="Height and width (a multiple of 16)."
)
@click.option("--steps", default=GenerateConfig.steps, show_default=True)
@click.option(
    "--cfg",
    "text_scale",
    default=GenerateConfig.text_scale,
    show_default=True,
    help="Text guidance scale (1 = off).",
)
@click.option(
    "--solver", type=click.Choice(["euler", "heun"]), default=GenerateConfig.solver, show_default=True
)
@click.option("--seed", default=GenerateConfig.seed, show_default=True)
@LAG
@click.option("--negative", default="", help="Negative prompt (what to steer away from).")
def generate(
    prompt, output, checkpoint, frames, fps, size, steps, text_scale, solver, seed, lag, negative
) -> None:
    """Generate a video from PROMPT and print its path."""
    from filmstrip.io import check_output_path, write_video
    from filmstrip.pipelines.generate import GenerateConfig, check_request, load_pipeline
    from filmstrip.pipelines.generate import generate as run

    cfg = GenerateConfig(
        frames=frames,
        height=size,
        width=size,
        steps=steps,
        text_scale=text_scale,
        solver=solver,
        seed=seed,
        lag=lag,
    )
    check_output_path(output)  # before minutes of work, not after
    pipe = load_pipeline(checkpoint)
    check_request(pipe, [prompt], cfg)
    video = run(pipe, [prompt], cfg, negative=negative)
    click.echo(str(write_video(output, video[0], fps=fps)))
