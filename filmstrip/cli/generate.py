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
PRECISION = click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16", "auto"]),
    default="fp32",
    show_default=True,
    help="The DiT's number format while sampling (auto: bf16 where this device runs it fast).",
)
DEVICE = click.option(
    "--device",
    default="auto",
    show_default=True,
    help="Where the models run: auto (a CUDA GPU when one is visible, else the CPU), cpu, cuda, "
    "cuda:N or mps. Pixels come back to the CPU to be written.",
)
COMPILE = click.option(
    "--compile",
    "compile_",
    is_flag=True,
    help="torch.compile the DiT: about a minute to start, then ~1.4x faster sampling (many clips).",
)
LAG = click.option(
    "--lag",
    type=float,
    default=None,
    help="Pyramid schedule: how far the last frame trails the first (for --frame-noise models) "
    "[default: 1 for a causal model, else 0].",
)


LORA = click.option(
    "--lora",
    "loras",
    multiple=True,
    metavar="FILE[:SCALE]",
    help="A LoRA from `filmstrip train lora` at this scale (default 1); repeat for several.",
)


def frame_size(value: str | None) -> tuple[int, int] | None:
    """--size N or WxH as (height, width); None where not given."""
    if value is None:
        return None
    w, sep, h = value.lower().partition("x")
    try:
        width, height = int(w), int(h) if sep else int(w)
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: give N (N x N) or WxH, e.g. 144x112", param_hint="--size"
        ) from None
    if width < 1 or height < 1:
        raise click.BadParameter(f"{value!r}: a frame needs a positive width and height", param_hint="--size")
    return height, width


FRAMES = click.option(
    "--frames",
    type=int,
    default=None,
    help="Frames of each clip [default: the model's training clips' (17 for the bundled models)].",
)


def size_option(help: str):
    """--size N or WxH, read by `frame_size`; its default is the model's (`asked_shape`)."""
    return click.option(
        "--size", callback=lambda ctx, param, value: frame_size(value), metavar="N|WxH", help=help
    )


def with_loras(pipe, loras: tuple[str, ...]) -> None:
    """Load --lora files into the pipeline's DiT, merged: once folded into the weights they
    cost nothing per step."""
    if loras:
        from filmstrip.models.lora import apply_loras, parse_lora_arg

        apply_loras(pipe.dit, [parse_lora_arg(v) for v in loras], merge=True)


def with_controlnet(pipe, path: Path, scale: float):
    """The pipeline with its DiT steered by the ControlNet in `path` (or a shipped one, by
    name) at `scale`."""
    from dataclasses import replace

    from filmstrip.checkpoint import resolve
    from filmstrip.models.controlnet import ControlledDiT, load_controlnet

    net = load_controlnet(resolve(path, "controlnet_masks"), pipe.dit).to(pipe.device).eval()
    return replace(pipe, dit=ControlledDiT(pipe.dit, net, scale))


@click.command()
@click.argument("prompt", required=False)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default=Path("outputs/clip.mp4"),
    show_default=True,
    help="Output file; '-' streams a fragmented MP4 to stdout (with --seconds).",
)
@T2V_CHECKPOINT
@FRAMES
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=8.0, show_default=True)
@size_option(
    "Frame size: N for N x N, or width x height, e.g. 144x112 (multiples of 16) [default: the size "
    "the model trained on most: 64 for the bundled models]."
)
@click.option(
    "--steps", type=int, default=None, help="Sampling steps [default: 20; 8 per chunk with --seconds]."
)
@click.option(
    "--cfg",
    "text_scale",
    type=float,
    default=None,
    help="Text guidance scale (1 = off) [default: 4; 2 with --edit or --control].",
)
@click.option(
    "--solver", type=click.Choice(["euler", "heun"]), default=GenerateConfig.solver, show_default=True
)
@click.option("--seed", default=GenerateConfig.seed, show_default=True)
@click.option(
    "--motion",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="How fast things move, 0 (still) to 1 (fastest), for a model trained with a motion condition.",
)
@click.option(
    "--motion-cfg",
    "motion_scale",
    default=GenerateConfig.motion_scale,
    show_default=True,
    help="With --motion: guidance towards the speed asked for (1 = off).",
)
@LORA
@click.option(
    "--camera",
    default=None,
    metavar="PRESET|PATH.json",
    help="Camera move for a model trained with a camera condition: pan-left, pan-right, pan-up, "
    "pan-down, zoom-in, zoom-out, static, or a JSON list of per-frame {x, y, scale}.",
)
@click.option(
    "--control",
    "control_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Structure maps (a video: white where things are, e.g. object masks) for --control-net.",
)
@click.option(
    "--control-net",
    "controlnet_path",
    type=click.Path(path_type=Path),
    help="A ControlNet from `filmstrip train controlnet` (needs --control).",
)
@click.option(
    "--control-scale", default=1.0, show_default=True, help="Strength of the ControlNet (0: the base model)."
)
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
    default=None,
    help="With --video: the noise level the clip is taken to (0 keeps it, 1 ignores it) [default: "
    "0.6]. With --edit: how far the clip is inverted (1: to pure noise) [default: 0.8].",
)
@click.option(
    "--edit",
    "edit_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Inversion editing: invert this clip under --source-prompt, regenerate under PROMPT.",
)
@click.option(
    "--source-prompt",
    default=None,
    help="With --edit (needed) or --video: what the clip shows now; the result then keeps the clip's "
    "attention (its layout and which object each word is bound to).",
)
@click.option(
    "--image",
    "image_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Image to video: this image is the first frame.",
)
@click.option(
    "--keyframe",
    "keyframes",
    multiple=True,
    metavar="FRAME:PATH",
    help="This image at this frame (0 = first, -1 = last); repeat for first + last or more.",
)
@click.option(
    "--extend",
    "extend_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Continue this clip: its last --context frames start a new window; writes clip + new frames "
    "[model: the bundled causal one unless --checkpoint, as it keeps motion across the join better].",
)
@click.option(
    "--context",
    type=int,
    default=None,
    help="With --extend: frames of the clip given (4k + 1) [default: about half of --frames].",
)
@click.option(
    "--image-cfg",
    "image_scale",
    type=float,
    default=None,
    help="Image guidance scale for --image/--keyframe/--extend (1 = off) [default: 6 when a keyframe "
    "follows frame 0, 4 with --extend, else 1].",
)
@click.option(
    "--image-strength",
    type=float,
    default=1.0,
    show_default=True,
    help="How exactly the first frame keeps the --image (1 = exactly; lower lets it change).",
)
@click.option(
    "--seconds",
    type=float,
    default=None,
    help="A long video from the causal model (bundled t2v_causal), made chunk by chunk with a KV cache.",
)
@click.option(
    "--stream",
    "streaming",
    is_flag=True,
    help="With --seconds: write frames as they are made (playable while it grows).",
)
@click.option(
    "--prompt",
    "timeline",
    multiple=True,
    metavar="'Ns: PROMPT'",
    help="With --seconds: a timeline entry, e.g. --prompt '0s: a red circle moves right' --prompt '20s: ...'.",
)
@click.option(
    "--window", default=3, show_default=True, help="With --seconds: latent frames of the past kept."
)
@click.option(
    "--sink", default=1, show_default=True, help="With --seconds: first latent frames kept for ever."
)
@click.option(
    "--context-noise",
    default=0.0,
    show_default=True,
    help="With --seconds: noise level at which made frames enter the cache.",
)
@PRECISION
@DEVICE
@COMPILE
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
    motion,
    motion_scale,
    loras,
    camera,
    control_path,
    controlnet_path,
    control_scale,
    lag,
    negative,
    video_path,
    strength,
    edit_path,
    source_prompt,
    image_path,
    keyframes,
    extend_path,
    context,
    image_scale,
    image_strength,
    seconds,
    streaming,
    timeline,
    window,
    sink,
    context_noise,
    precision,
    device,
    compile_,
) -> None:
    """Generate a video from PROMPT and print its path; start from or pass through given frames
    (--image, --keyframe), continue a clip (--extend), or edit one (--video, --edit)."""
    from filmstrip.io import check_output_path, write_video
    from filmstrip.pipelines.edit import EDIT_STRENGTH, EDIT_TEXT_SCALE, SDEDIT_STRENGTH, edit, video_to_video
    from filmstrip.pipelines.extend import extend
    from filmstrip.pipelines.generate import (
        CONTROL_TEXT_SCALE,
        GenerateConfig,
        asked_shape,
        check_request,
        load_pipeline,
    )
    from filmstrip.pipelines.generate import generate as run

    if prompt and timeline:
        raise click.UsageError("give the prompt as PROMPT or as --prompt entries, not both")
    if not prompt and not timeline:
        raise click.UsageError("give a PROMPT")
    if (timeline or streaming or str(output) == "-") and seconds is None:
        raise click.UsageError("--prompt timelines, --stream and '-o -' go with --seconds")
    if strength is not None and not (video_path or edit_path):
        raise click.UsageError("--strength goes with --video or --edit")
    if text_scale is None and edit_path:
        text_scale = EDIT_TEXT_SCALE
    elif text_scale is None:
        text_scale = CONTROL_TEXT_SCALE if control_path else GenerateConfig.text_scale
    if seconds is not None:
        from filmstrip.cli.stream import generate_long

        if loras:
            raise click.UsageError("--lora goes with clips; --seconds does not load LoRAs yet")
        if video_path or edit_path or extend_path or image_path or keyframes:
            raise click.UsageError("--seconds makes a video from text alone; drop the frame conditions")
        generate_long(list(timeline) or [prompt], output, checkpoint, seconds, fps, size, steps, text_scale,
                      seed, window, sink, context_noise, streaming, precision, device)  # fmt: skip
        return
    _refuse_mixed_modes(video_path, edit_path, extend_path, image_path or keyframes, source_prompt, context,
                        control_path, controlnet_path, camera, motion)  # fmt: skip
    check_output_path(output)  # before minutes of work, not after
    # Extension continues a clip, which the causal model was trained to do (diffusion forcing):
    # direction after the join 91.3% against the bidirectional model's 86.2% (RESULTS, session 26).
    model = checkpoint or ("t2v_causal" if extend_path else None)
    pipe = load_pipeline(model, device=device, precision=precision, compile=compile_)
    with_loras(pipe, loras)
    frames, height, width = asked_shape(pipe, frames, size)  # else what the model saw most
    cfg = GenerateConfig(frames=frames, height=height, width=width, text_scale=text_scale,
                         steps=GenerateConfig.steps if steps is None else steps, image_scale=image_scale,
                         solver=solver, seed=seed, lag=lag, motion=motion, motion_scale=motion_scale)  # fmt: skip
    path = _camera_path(camera, frames, fps) if camera is not None else None
    conditions = _frame_conditions(image_path, keyframes, image_strength, height, width)
    control = None
    if controlnet_path:
        pipe = with_controlnet(pipe, controlnet_path, control_scale)
        control = (_read_clip(control_path, frames, height, width, fps).mean(dim=1, keepdim=True) + 1) / 2
    check_request(pipe, [prompt], cfg)
    if extend_path:
        clip = _read_clip(extend_path, None, height, width, fps)
        video = extend(pipe, clip, [prompt], cfg, context, negative=negative)
    elif conditions or control is not None or path is not None:
        video = run(
            pipe, [prompt], cfg, negative=negative, conditions=conditions, control=control, camera=path
        )
    elif video_path or edit_path:
        clip = _read_clip(video_path or edit_path, frames, height, width, fps)
        if video_path:
            level = SDEDIT_STRENGTH if strength is None else strength
            source = [source_prompt] if source_prompt else None
            video = video_to_video(pipe, clip, [prompt], cfg, level, negative=negative, source_prompts=source)
        else:
            level = EDIT_STRENGTH if strength is None else strength
            video = edit(pipe, clip, [source_prompt], [prompt], cfg, strength=level)
    else:
        video = run(pipe, [prompt], cfg, negative=negative)
    click.echo(str(write_video(output, video[0], fps=fps)))


def _refuse_mixed_modes(
    video_path: Path | None,
    edit_path: Path | None,
    extend_path: Path | None,
    frames_given: object,
    source_prompt: str | None,
    context: int | None,
    control_path: Path | None,
    controlnet_path: Path | None,
    camera: str | None,
    motion: float | None,
) -> None:
    """One sentence for options that do not go together: one way of giving frames at a time,
    and each option with the modes it means something in."""
    modes = [name for name, on in (("--video", video_path), ("--edit", edit_path), ("--extend", extend_path),
                                   ("--image/--keyframe", frames_given)) if on]  # fmt: skip
    if len(modes) > 1:
        raise click.UsageError(f"give one of {', '.join(modes)}, not several")
    if edit_path and not source_prompt:
        raise click.UsageError("--edit needs --source-prompt: what the clip shows now")
    if source_prompt and not (edit_path or video_path):
        raise click.UsageError("--source-prompt goes with --edit or --video")
    if context is not None and not extend_path:
        raise click.UsageError("--context goes with --extend")
    if bool(control_path) != bool(controlnet_path):
        raise click.UsageError("--control (the maps) and --control-net (the branch) go together")
    if control_path and (video_path or edit_path or extend_path):
        raise click.UsageError(
            "--control goes with text, --image or --keyframe, not with --video, --edit or --extend"
        )
    if camera is not None and (video_path or edit_path or extend_path):
        raise click.UsageError(
            "--camera goes with text, --image or --keyframe, not with --video, --edit or --extend"
        )
    if motion is not None and (video_path or edit_path):
        raise click.UsageError(
            "--motion sets the speed of a new video; --video and --edit keep the clip's own"
        )


def _camera_path(camera: str, frames: int, fps: float):
    """--camera as a CameraPath: a preset's name, else a path.json file."""
    from filmstrip.data.camera import PRESETS, preset_path, read_path
    from filmstrip.errors import InputError

    if camera in PRESETS:
        return preset_path(camera, frames, fps)
    if not Path(camera).exists():
        raise InputError(f"--camera {camera}: neither a preset ({', '.join(PRESETS)}) nor a path.json file")
    return read_path(camera, frames)


def _frame_conditions(
    image_path: Path | None, keyframes: tuple[str, ...], strength: float, height: int, width: int
) -> list:
    """--image and --keyframe as ImageConditions; an image of another size is resized and
    centre-cropped as the data pipeline does, and this says so."""
    from filmstrip.io.image import read_image
    from filmstrip.pipelines.conditions import ImageCondition, fit_frames

    items = [(0, image_path)] if image_path else []
    for spec in keyframes:
        index, sep, path = spec.partition(":")
        try:
            items.append((int(index), Path(path)))
        except ValueError:
            raise click.BadParameter(
                f"{spec!r}: give FRAME:PATH, e.g. 16:last.png", param_hint="--keyframe"
            ) from None
        if not sep or not path:
            raise click.BadParameter(f"{spec!r}: give FRAME:PATH, e.g. 16:last.png", param_hint="--keyframe")
    conditions = []
    for index, path in items:
        image = read_image(path)
        if image.shape[1:] != (height, width):
            click.echo(
                f"{path}: {image.shape[2]}x{image.shape[1]} resized and centre-cropped to {width}x{height}",
                err=True,
            )
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                image = fit_frames(image, height, width)
        conditions.append(ImageCondition(image, index, strength if index == 0 else 1.0))
    return conditions


def _read_clip(path: Path, frames: int | None, height: int, width: int, fps: float):
    """(1, 3, frames, height, width) in [-1, 1] (frames None: all of it): sampled at `fps`,
    resized to cover height x width with its aspect kept and centre-cropped, as the data
    pipeline does; says so when it crops."""
    import torch

    from filmstrip.data.buckets import Bucket, center_crop, cover_size
    from filmstrip.io import probe, read_video

    info = probe(path)  # the reader refuses a clip shorter than asked, in one sentence
    bucket = Bucket(height, width)
    video, _ = read_video(
        path,
        num_frames=frames,
        fps=fps,
        size=cover_size(info.height, info.width, bucket),
        dtype=torch.float32,
    )
    if video.shape[-2:] != (height, width):
        click.echo(
            f"{path}: {info.width}x{info.height} resized and centre-cropped to {width}x{height}", err=True
        )
    return center_crop(video, bucket)[None].contiguous()
