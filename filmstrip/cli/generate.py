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
@click.option(
    "--video",
    "video_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Video-to-video: redraw this clip under PROMPT (see --strength).",
)
@click.option(
    "--strength",
    type=click.FloatRange(0.0, 1.0),
    default=0.6,
    show_default=True,
    help="With --video: the noise level the clip is taken to (0 keeps it, 1 ignores it).",
)
@click.option(
    "--edit",
    "edit_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Inversion editing: invert this clip under --source-prompt, regenerate under PROMPT.",
)
@click.option("--source-prompt", default=None, help="With --edit: what the clip shows now.")
def generate(
    prompt,
    output,
    checkpoint,
    frames,
    fps,
    size,
    steps,
    text_scale,
    solver,
    seed,
    lag,
    negative,
    video_path,
    strength,
    edit_path,
    source_prompt,
) -> None:
    """Generate a video from PROMPT and print its path; or edit a clip (--video, --edit)."""
    from filmstrip.io import check_output_path, write_video
    from filmstrip.pipelines.edit import edit, video_to_video
    from filmstrip.pipelines.generate import GenerateConfig, check_request, load_pipeline
    from filmstrip.pipelines.generate import generate as run

    if video_path and edit_path:
        raise click.UsageError("give either --video (video-to-video) or --edit (inversion editing), not both")
    if edit_path and not source_prompt:
        raise click.UsageError("--edit needs --source-prompt: what the clip shows now")

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
    if video_path or edit_path:
        clip = _read_clip(video_path or edit_path, frames, size, fps)
        if video_path:
            video = video_to_video(pipe, clip, [prompt], cfg, strength, negative=negative)
        else:
            video = edit(pipe, clip, [source_prompt], [prompt], cfg)
    else:
        video = run(pipe, [prompt], cfg, negative=negative)
    click.echo(str(write_video(output, video[0], fps=fps)))


def _read_clip(path: Path, frames: int, size: int, fps: float):
    """(1, 3, frames, size, size) in [-1, 1]: sampled at `fps`, the short side resized to `size`
    and the long side centre-cropped, as the data pipeline does; says so when it crops."""
    import torch

    from filmstrip.data.buckets import Bucket, center_crop
    from filmstrip.io import probe, read_video

    info = probe(path)  # the reader refuses a clip shorter than asked, in one sentence
    video, _ = read_video(path, num_frames=frames, fps=fps, size=size, dtype=torch.float32)
    if video.shape[-2:] != (size, size):
        click.echo(
            f"{path}: {info.width}x{info.height} resized and centre-cropped to {size}x{size}", err=True
        )
    return center_crop(video, Bucket(size, size))[None].contiguous()
