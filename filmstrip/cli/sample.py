"""`filmstrip sample PROMPTS.txt -o DIR`: a folder of generated videos, for evaluation or as a
dataset."""

from __future__ import annotations

from pathlib import Path

import click

from filmstrip.cli.generate import (
    COMPILE,
    DEVICE,
    FRAMES,
    LORA,
    PRECISION,
    T2V_CHECKPOINT,
    size_option,
    with_loras,
)
from filmstrip.cli.recipe_options import count_option
from filmstrip.pipelines.generate import GenerateConfig


@click.command("sample")
@click.argument("prompts", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for the videos.",
)
@T2V_CHECKPOINT
@count_option("--samples", 1, "Videos per prompt, each from its own seed.")
@count_option("--batch", 8, "Videos made together (more: faster, more memory; the videos are the same).")
@FRAMES
@size_option("Frame size, N or WxH [default: the size the model trained on most: 64 bundled].")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=8.0, show_default=True)
@click.option("--steps", default=GenerateConfig.steps, show_default=True)
@click.option("--cfg", "text_scale", default=GenerateConfig.text_scale, show_default=True)
@click.option(
    "--seed", default=GenerateConfig.seed, show_default=True, help="Video k is drawn from seed + k."
)
@click.option("--negative", default="", help="Negative prompt (what to steer away from).")
@LORA
@PRECISION
@DEVICE
@COMPILE
def sample_cmd(
    prompts, out, checkpoint, samples, batch, frames, size, fps, steps, text_scale, seed, negative, loras,
    precision, device, compile_,
) -> None:  # fmt: skip
    """Generate a folder of videos, SAMPLES for each line of PROMPTS (a text file), with their
    captions: for `eval fvd DIR real/`, or as a dataset (`--data folder:DIR`). Re-running
    makes only the videos still missing."""
    from filmstrip.pipelines.generate import asked_shape, load_pipeline
    from filmstrip.pipelines.video_set import read_prompt_file, write_video_set

    lines = read_prompt_file(prompts)
    pipe = load_pipeline(checkpoint, device=device, precision=precision, compile=compile_)
    with_loras(pipe, loras)
    frames, height, width = asked_shape(pipe, frames, size)
    cfg = GenerateConfig(frames=frames, height=height, width=width,
                         steps=steps, text_scale=text_scale, seed=seed)  # fmt: skip
    model = f"{checkpoint or 't2v'}" + "".join(f" + {lora}" for lora in loras)
    try:
        write_video_set(pipe, lines, cfg, out, samples, batch, fps, negative, model)
    except KeyboardInterrupt:
        made = len(list(Path(out).glob("*.mp4")))
        click.echo(
            f"\ninterrupted: {made} of {len(lines) * samples} videos made; run again to finish", err=True
        )
        raise SystemExit(130) from None
    click.echo(str(out))
