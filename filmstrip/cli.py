"""The `filmstrip` command. It only parses arguments and calls the library."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from filmstrip.data.shapes import DEFAULT_HELD_OUT
from filmstrip.io import VideoReadError, VideoWriteError


def friendly_errors(fn):
    """Turn the library's typed errors into one line on stderr and exit code 1, not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (VideoReadError, VideoWriteError, ValueError, FileNotFoundError, FloatingPointError) as e:
            raise click.ClickException(str(e)) from None

    return wrapper


def load_init(model, state: dict, source, may_be_new: tuple[str, ...]) -> None:
    """Load `--init` weights into `model`. Only parameters whose names contain one of
    `may_be_new` may be missing: parts added to a trained model that start as no-ops."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not any(part in k for part in may_be_new) for k in missing):
        raise click.UsageError(
            f"{source} does not fit this model: missing {missing}, unexpected {unexpected}"
        )


def trainer_options(steps: int, batch_size: int, lr: float, warmup: int, workers: int, sample_every: int):
    """The flags every training command shares; the command receives them as one
    `TrainConfig` argument, `train_cfg`. Arguments are this command's defaults."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(
            *args,
            steps,
            batch_size,
            accumulate,
            lr,
            warmup,
            bf16,
            workers,
            ckpt_every,
            sample_every,
            seed,
            **kwargs,
        ):
            from filmstrip.train.trainer import TrainConfig

            train_cfg = TrainConfig(
                steps=steps,
                batch_size=batch_size,
                accumulate=accumulate,
                lr=lr,
                warmup=warmup,
                bf16=bf16,
                seed=seed,
                ckpt_every=ckpt_every,
                sample_every=sample_every,
                num_workers=workers,
            )
            return fn(*args, train_cfg=train_cfg, **kwargs)

        options = [
            click.option("--steps", default=steps, show_default=True),
            click.option(
                "--batch-size", default=batch_size, show_default=True, help="Global: all ranks together."
            ),
            click.option("--accumulate", default=1, show_default=True, help="Gradient accumulation steps."),
            click.option("--lr", default=lr, show_default=True),
            click.option("--warmup", default=warmup, show_default=True),
            click.option("--bf16/--fp32", default=True, show_default=True),
            click.option(
                "--workers", default=workers, show_default=True, help="DataLoader worker processes."
            ),
            click.option("--ckpt-every", default=500, show_default=True),
            click.option("--sample-every", default=sample_every, show_default=True),
            click.option("--seed", default=0, show_default=True),
        ]
        for option in reversed(options):
            wrapper = option(wrapper)
        return wrapper

    return decorate


@click.group()
@click.version_option(package_name="filmstrip")
def main() -> None:
    """filmstrip: a compact, trainable video-generation stack."""


@main.group()
def data() -> None:
    """Inspect the built-in datasets and your own videos."""


@data.command()
@click.argument("name")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the grid: .mp4, .webm or .gif.",
)
@click.option("-n", "--num", default=8, show_default=True, help="Clips in the grid.")
@click.option("--columns", default=4, show_default=True)
@click.option("--frames", default=16, show_default=True, help="Frames per clip.")
@click.option(
    "--size", default=64, show_default=True, help="Clip height and width (bucket area for folders)."
)
@click.option(
    "--fps", type=float, default=None, help="Sampling rate [default: 8, or the source rate for folders]."
)
@click.option("--split", type=click.Choice(["train", "test"]), default="train", show_default=True)
@click.option("--seed", default=0, show_default=True)
@friendly_errors
def preview(
    name: str,
    output: Path,
    num: int,
    columns: int,
    frames: int,
    size: int,
    fps: float | None,
    split: str,
    seed: int,
) -> None:
    """Render a captioned grid of clips from NAME: shapes, digits or folder:PATH."""
    from filmstrip.data import build_dataset
    from filmstrip.io import write_video
    from filmstrip.viz import video_grid

    dataset = build_dataset(name, num_frames=frames, height=size, width=size, fps=fps, seed=seed, split=split)
    items = [dataset[i] for i in range(min(num, len(dataset)))]
    grid = video_grid(
        [it["video"] for it in items], [it["caption"] or "(no caption)" for it in items], columns
    )
    # Play at the sampling rate; a folder sampled at its own rate plays at its first video's.
    rate = fps or getattr(dataset.cfg, "fps", None) or dataset.items[0].info.fps
    path = write_video(output, grid, fps=rate)
    click.echo(str(path))


@data.command("probe")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@friendly_errors
def probe_cmd(paths: tuple[Path, ...]) -> None:
    """Print size, frame count, fps and duration of each video."""
    from filmstrip.io import probe

    for path in paths:
        info = probe(path)
        vfr = ", variable frame rate" if info.variable_frame_rate else ""
        bad = ", TRUNCATED" if info.truncated else ""
        click.echo(
            f"{path}: {info.width}x{info.height}, {info.num_frames} frames, {info.fps:.3f} fps, "
            f"{info.duration:.2f} s, {info.codec}/{info.pix_fmt}{vfr}{bad}"
        )


@main.group()
def vae() -> None:
    """Train and use the video autoencoders (3D VAE, 2D baseline, FSQ)."""


@vae.command("train")
@click.option(
    "--data",
    "datasets",
    multiple=True,
    default=("shapes", "digits"),
    show_default=True,
    help="shapes, digits or folder:PATH; repeat to mix.",
)
@click.option("--preset", default="vae3d", show_default=True, help="vae3d, vae3d21, vae2d, fsq3d, tiny, ...")
@click.option(
    "--channels",
    default=None,
    help="Width per resolution level, finest first, e.g. 48,96,144 [default: the preset's].",
)
@click.option(
    "--temporal-factor",
    type=int,
    default=None,
    help="Time compression, a power of two (1 + k*factor frames -> 1 + k) [default: the preset's].",
)
@click.option("--latent-channels", type=int, default=None, help="KL latent channels [default: the preset's].")
@click.option(
    "--run",
    "run_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Run folder (checkpoints, log, samples); an existing run resumes.",
)
@click.option(
    "--init",
    "init_from",
    type=click.Path(path_type=Path),
    default=None,
    help="Start from these weights (fine-tuning); the model config comes from them.",
)
@click.option(
    "--frames",
    default=17,
    show_default=True,
    help="Frames per training clip (1 + k * the temporal factor suits a 3D VAE).",
)
@click.option("--size", default=64, show_default=True, help="Frame size (bucket area for folders).")
@click.option("--crop", type=int, default=None, help="Train on random square crops of this size.")
@click.option("--fps", type=float, default=None)
@click.option("--kl", default=1e-4, show_default=True, help="KL weight.")
@click.option("--l1", "l1_weight", default=0.2, show_default=True, help="L1 weight (MSE has weight 1).")
@click.option("--ssim-weight", default=0.05, show_default=True)
@click.option("--gan", default=0.0, show_default=True, help="Adversarial weight; 0 = no discriminator.")
@click.option("--gan-start", default=2000, show_default=True)
@click.option("--image-every", default=4, show_default=True, help="Every k-th step trains on single frames.")
@click.option(
    "--temporal", default=0.0, show_default=True, help="Weight of the flicker (temporal difference) loss."
)
@click.option(
    "--freeze-encoder",
    is_flag=True,
    help="Train the decoder only (with --init): keeps the latent space of models trained on it.",
)
@click.option(
    "--time-upsample",
    type=click.Choice(["repeat", "learned"]),
    default=None,
    help="How the decoder doubles time [default: the preset's, or --init's]; 'learned' can be "
    "added to a trained 'repeat' decoder with --init (it starts as a repeat).",
)
@trainer_options(steps=3000, batch_size=8, lr=5e-4, warmup=200, workers=1, sample_every=500)
@friendly_errors
def vae_train(
    datasets,
    preset,
    channels,
    temporal_factor,
    latent_channels,
    run_dir,
    init_from,
    frames,
    size,
    crop,
    fps,
    kl,
    l1_weight,
    ssim_weight,
    gan,
    gan_start,
    image_every,
    temporal,
    freeze_encoder,
    time_upsample,
    train_cfg,
) -> None:
    """Train an autoencoder on built-in data or your own footage (folder:PATH)."""
    from dataclasses import replace

    import torch
    from torch.utils.data import ConcatDataset

    from filmstrip.data import build_dataset, collate_clips
    from filmstrip.data.crop import RandomCropDataset
    from filmstrip.models import num_parameters
    from filmstrip.models.vae import load_vae
    from filmstrip.models.vae import preset as vae_preset
    from filmstrip.train.trainer import Trainer
    from filmstrip.train.vae_task import VAELossConfig, VAETask

    def dataset(split: str, offset: int):
        parts = []
        for spec in datasets:
            ds = build_dataset(
                spec,
                num_frames=frames,
                height=size,
                width=size,
                fps=fps,
                seed=train_cfg.seed + offset,
                split=split,
                clips_per_video=200,
            )
            parts.append(RandomCropDataset(ds, crop, train_cfg.seed + offset) if crop else ds)
        return parts[0] if len(parts) == 1 else ConcatDataset(parts)

    train_set = dataset("train", 0)
    held_out = dataset("test", 1) if not any(d.startswith("folder:") for d in datasets) else train_set
    preview = torch.stack([held_out[i * max(1, len(held_out) // 8)]["video"] for i in range(8)])
    init = load_vae(init_from) if init_from else None
    if freeze_encoder and init is None:
        raise click.UsageError("--freeze-encoder fine-tunes a trained model's decoder: give it with --init")
    try:
        widths = tuple(int(c) for c in channels.split(",")) if channels else None
    except ValueError:
        raise click.BadParameter(
            f"expected integers like 48,96,144, got {channels!r}", param_hint="--channels"
        ) from None
    shape = {"channels": widths, "temporal_factor": temporal_factor, "latent_channels": latent_channels}
    shape = {k: v for k, v in shape.items() if v is not None}
    if shape and init:
        options = ", ".join("--" + k.replace("_", "-") for k in shape)
        raise click.UsageError(f"{options} shape a new model; a model given with --init keeps its own")
    cfg = init.cfg if init else vae_preset(preset, **shape)
    if latent_channels is not None and cfg.bottleneck == "fsq":
        raise click.UsageError("--latent-channels sets KL latents; an FSQ model has one channel per level")
    if time_upsample:
        if cfg.temporal_factor == 1:
            raise click.UsageError("--time-upsample needs a model that compresses time (not the 2D baseline)")
        cfg = replace(cfg, time_upsample=time_upsample)
    task = VAETask(
        cfg,
        VAELossConfig(
            l1=l1_weight,
            ssim=ssim_weight,
            kl=kl,
            gan=gan,
            gan_start=gan_start,
            image_every=image_every,
            temporal=temporal,
        ),
        preview=preview,
        data_name="+".join(datasets),
        freeze_encoder=freeze_encoder,
    )
    if init is not None:
        # A learned time upsampling added to a "repeat" decoder starts as an exact repeat.
        load_init(task.model, init.state_dict(), init_from, may_be_new=(".time_ups.",))
    trainer = Trainer(train_cfg, task, train_set, run_dir, collate=collate_clips)
    if trainer.resume():
        click.echo(f"resuming {run_dir} from step {trainer.step}")
    n_params = num_parameters(task.model)
    click.echo(
        f"{preset if not init else init_from}: {n_params / 1e6:.2f}M parameters, "
        f"{cfg.compression:.0f}x compression, {len(train_set)} training clips"
    )
    trainer.fit()
    click.echo(f"model: {run_dir / 'model'}")


_CHECKPOINT = click.option(
    "--checkpoint",
    "-c",
    type=click.Path(path_type=Path),
    default=None,
    help="Model directory [default: the bundled 3D VAE].",
)


def _read_for_vae(path: Path, frames: int | None, size: int | None, fps: float | None):
    """(1, 3, T, H, W) float clip, resized so its short side is `size` and cropped to /8."""
    import torch

    from filmstrip.eval.reconstruction import crop_to_multiple
    from filmstrip.io import probe, read_video

    info = probe(path)
    target = None
    if size:
        scale = size / min(info.height, info.width)
        target = (max(8, round(info.height * scale)), max(8, round(info.width * scale)))
    video, clip = read_video(path, num_frames=frames, fps=fps, size=target, dtype=torch.float32)
    return crop_to_multiple(video.unsqueeze(0), 8), clip.fps


@vae.command("reconstruct")
@click.argument("input_path", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@_CHECKPOINT
@click.option("--frames", type=int, default=None, help="Read only this many frames [default: all].")
@click.option("--size", type=int, default=None, help="Resize so the short side is this [default: as is].")
@click.option("--fps", type=float, default=None)
@click.option("--side-by-side", is_flag=True, help="Write input and reconstruction next to each other.")
@friendly_errors
def vae_reconstruct(input_path, output, checkpoint, frames, size, fps, side_by_side) -> None:
    """Encode and decode a video; print PSNR, SSIM and flicker against the input."""
    import torch

    from filmstrip.eval.metrics import flicker, psnr, ssim
    from filmstrip.eval.reconstruction import reconstruct
    from filmstrip.io import write_video
    from filmstrip.models.vae import load_vae

    model = load_vae(checkpoint)
    x, rate = _read_for_vae(input_path, frames, size, fps)
    recon = reconstruct(model, x)
    out = torch.cat([x, recon], dim=-1) if side_by_side else recon
    path = write_video(output, out[0], fps=rate)
    line = f"{path}: {x.shape[2]} frames {x.shape[3]}x{x.shape[4]}, PSNR {float(psnr(recon, x)):.2f} dB, SSIM {float(ssim(recon, x)):.4f}"
    if x.shape[2] > 1:
        line += f", flicker {float(flicker(recon, x)):.2f}"
    click.echo(line)


@vae.command("encode")
@click.argument("input_path", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Latent file (.safetensors).",
)
@_CHECKPOINT
@click.option("--frames", type=int, default=None)
@click.option("--size", type=int, default=None)
@click.option("--fps", type=float, default=None)
@friendly_errors
def vae_encode(input_path, output, checkpoint, frames, size, fps) -> None:
    """Encode a video to a latent file."""
    from filmstrip.checkpoint import save_tensors_atomic
    from filmstrip.models.vae import BUNDLED_DIR, load_vae

    model = load_vae(checkpoint)
    x, rate = _read_for_vae(input_path, frames, size, fps)
    import torch

    with torch.no_grad():
        z = model.encode_chunked(x)
    output.parent.mkdir(parents=True, exist_ok=True)
    save_tensors_atomic(
        output,
        {"latents": z[0]},
        metadata={
            "fps": str(rate),
            "num_frames": str(x.shape[2]),
            "checkpoint": str(checkpoint or BUNDLED_DIR / "vae3d"),
        },
    )
    click.echo(f"{output}: latents {tuple(z.shape[1:])} from {tuple(x.shape[1:])}")


@vae.command("decode")
@click.argument("latent_path", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@_CHECKPOINT
@friendly_errors
def vae_decode(latent_path, output, checkpoint) -> None:
    """Decode a latent file written by `filmstrip vae encode` to a video."""
    import torch
    from safetensors import safe_open

    from filmstrip.io import write_video
    from filmstrip.models.vae import load_vae

    if not latent_path.exists():
        raise FileNotFoundError(f"{latent_path}: no such latent file")
    try:
        with safe_open(str(latent_path), "pt") as f:
            meta = f.metadata() or {}
            z = f.get_tensor("latents")
    except Exception as e:
        raise ValueError(
            f"{latent_path}: not a latent file written by `filmstrip vae encode` ({e})"
        ) from None
    model = load_vae(checkpoint or meta.get("checkpoint"))
    with torch.no_grad():
        x = model.decode_chunked(z.unsqueeze(0).float(), num_frames=int(meta.get("num_frames", 0)) or None)
    path = write_video(output, x[0].clamp(-1, 1), fps=float(meta.get("fps", 8)))
    click.echo(f"{path}: {x.shape[2]} frames {x.shape[3]}x{x.shape[4]}")


@vae.command("eval")
@_CHECKPOINT
@click.option("--data", "spec", default="shapes", show_default=True)
@click.option("--split", type=click.Choice(["train", "test"]), default="test", show_default=True)
@click.option("--clips", default=64, show_default=True)
@click.option("--frames", default=17, show_default=True)
@click.option("--size", default=64, show_default=True)
@click.option("--fps", type=float, default=None)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@friendly_errors
def vae_eval(checkpoint, spec, split, clips, frames, size, fps, as_json) -> None:
    """PSNR, SSIM and flicker of an autoencoder on held-out clips (and FSQ codebook usage)."""
    import json

    from filmstrip.data import build_dataset
    from filmstrip.eval.reconstruction import evaluate
    from filmstrip.models.vae import load_vae

    model = load_vae(checkpoint)
    dataset = build_dataset(
        spec,
        num_frames=frames,
        height=size,
        width=size,
        fps=fps,
        seed=1,
        split=split,
        clips_per_video=max(1, clips // 4),
    )
    result = evaluate(model, dataset, clips)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(
        f"{spec} ({split}, {int(result['clips'])} clips of {frames} frames, {result['compression']:.0f}x):"
    )
    click.echo(f"  PSNR {result['psnr']:.2f} +- {result['psnr_std']:.2f} dB   SSIM {result['ssim']:.4f}")
    if "flicker" in result:
        click.echo(
            f"  flicker {result['flicker']:.3f} grey levels (mean abs error {result['abs_error']:.3f}; "
            f"ratio {result['flicker'] / result['abs_error']:.3f})"
        )
    if "codes_used_fraction" in result:
        click.echo(
            f"  codebook: {result['codes_used_fraction']:.1%} of {int(result['codes_codebook_size'])} used, "
            f"perplexity {result['codes_perplexity']:.0f}"
        )


@main.group()
def train() -> None:
    """Train the generative models."""


_HELD_OUT = tuple(",".join(combo) for combo in DEFAULT_HELD_OUT)  # as --hold-out flags
_LAG = click.option(
    "--lag",
    default=0.0,
    show_default=True,
    help="Pyramid schedule: how far the last frame trails the first (for --frame-noise models).",
)


def _parse_objects(value: str) -> tuple[int, int]:
    """'3' -> (3, 3); '2-3' -> (2, 3)."""
    try:
        low, _, high = value.partition("-")
        bounds = int(low), int(high or low)
    except ValueError:
        raise click.BadParameter(f"expected N or MIN-MAX, got {value!r}", param_hint="--objects") from None
    if not 1 <= bounds[0] <= bounds[1]:
        raise click.BadParameter(f"need 1 <= MIN <= MAX, got {value!r}", param_hint="--objects")
    return bounds


def _join_caches(first, others):
    """One dataset over several latent caches: same VAE, same clip size."""
    from torch.utils.data import ConcatDataset

    from filmstrip.data.latents import vae_config_dict

    for other in others:
        if vae_config_dict(first.meta["vae"]) != vae_config_dict(other.meta["vae"]):
            raise click.UsageError(f"{other.root} was encoded by another VAE than {first.root}")
        if other[0]["latents"].shape != first[0]["latents"].shape:
            raise click.UsageError(
                f"{other.root} holds latents of shape {tuple(other[0]['latents'].shape)}, "
                f"{first.root} of {tuple(first[0]['latents'].shape)}: clips must be the same size"
            )
    return ConcatDataset([first, *others])


def _parse_held_out(values: tuple[str, ...]) -> tuple[tuple[str, str, str], ...]:
    combos = []
    for v in values:
        parts = tuple(p.strip() for p in v.split(","))
        if len(parts) != 3:
            raise ValueError(f"--hold-out takes 'colour,shape,direction' (use * for any), got {v!r}")
        combos.append(parts)
    return tuple(combos)


@train.command("t2v")
@click.option(
    "--data", "spec", default="shapes", show_default=True, help="shapes, digits or folder:PATH (captioned)."
)
@click.option("--preset", default="small", show_default=True, help="DiT size: tiny, small, base, large.")
@click.option("--attention", type=click.Choice(["full", "factorized"]), default="full", show_default=True)
@click.option("--run", "run_dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option(
    "--vae", "vae_path", type=click.Path(path_type=Path), default=None, help="[default: bundled 3D VAE]"
)
@click.option(
    "--cache",
    "cache_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Latent cache folder [default: RUN/latents].",
)
@click.option("--clips", default=20_000, show_default=True, help="Training clips to encode into the cache.")
@click.option("--frames", default=17, show_default=True)
@click.option("--size", default=64, show_default=True)
@click.option("--fps", type=float, default=None)
@click.option(
    "--hold-out",
    "held_out",
    multiple=True,
    default=_HELD_OUT,
    show_default=True,
    help="colour,shape,direction never shown in training (shapes only).",
)
@click.option(
    "--start-words",
    default=0.0,
    show_default=True,
    help="Chance that a caption says where an object starts (shapes only).",
)
@click.option(
    "--objects",
    default="1-3",
    show_default=True,
    help="Objects per clip, N or MIN-MAX (shapes only): e.g. a cache of hard 3-object scenes.",
)
@click.option(
    "--extra-cache",
    "extra_caches",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Further built latent caches (same VAE) to train on as well; repeat to add more.",
)
@click.option("--text-dropout", default=0.1, show_default=True)
@click.option(
    "--motion", default=0.0, show_default=True, help="Weight of the motion (frame difference) loss."
)
@click.option(
    "--frame-embedding/--no-frame-embedding",
    default=False,
    show_default=True,
    help="Give the DiT each latent frame's absolute index (added to a model given with --init).",
)
@click.option(
    "--place-embedding/--no-place-embedding",
    default=False,
    show_default=True,
    help="Give the DiT each token's place in the frame (added to a model given with --init).",
)
@click.option(
    "--text-refiner",
    default=0,
    show_default=True,
    help="Trainable self-attention layers over the prompt's tokens, so each word gathers its clause "
    "(added to a model given with --init, where it starts as a pass-through).",
)
@click.option(
    "--frame-noise",
    default=0.0,
    show_default=True,
    help="Share of video clips with a noise level per latent frame (diffusion forcing).",
)
@click.option(
    "--shift",
    type=float,
    default=None,
    help="Fixed timestep shift for training and sampling [default: from the token count].",
)
@click.option(
    "--init",
    "init_from",
    type=click.Path(path_type=Path),
    default=None,
    help="Start from this DiT (fine-tuning); its config replaces --preset.",
)
@trainer_options(steps=9000, batch_size=32, lr=3e-4, warmup=300, workers=0, sample_every=1000)
@friendly_errors
def train_t2v(
    spec,
    preset,
    attention,
    run_dir,
    vae_path,
    cache_dir,
    clips,
    frames,
    size,
    fps,
    held_out,
    start_words,
    objects,
    extra_caches,
    text_dropout,
    motion,
    frame_noise,
    frame_embedding,
    place_embedding,
    text_refiner,
    shift,
    init_from,
    train_cfg,
):
    """Train a text-to-video DiT on VAE latents (cached on first use; --steps 0 only builds
    the cache, e.g. several in parallel before one run trains on them all)."""
    from dataclasses import replace

    from filmstrip.checkpoint import load_model
    from filmstrip.data import ShapesConfig, ShapesDataset, build_dataset
    from filmstrip.data.latents import LatentDataset, build_latent_cache, collate_latents
    from filmstrip.diffusion.flow import FlowConfig
    from filmstrip.io import write_video
    from filmstrip.models import num_parameters
    from filmstrip.models.dit import DiTConfig
    from filmstrip.models.dit import preset as dit_preset
    from filmstrip.models.vae import load_vae
    from filmstrip.pipelines.generate import GenerateConfig, Pipeline, generate
    from filmstrip.text.encoder import TextEncoder
    from filmstrip.train.t2v_task import T2VConfig, T2VTask
    from filmstrip.train.trainer import Trainer, default_device, init_distributed
    from filmstrip.viz import video_grid

    # The frozen encoders run where the DiT trains: on a GPU the cache builds in a minute.
    device = default_device(init_distributed())
    vae = load_vae(vae_path, device)
    text = TextEncoder(device)
    combos = _parse_held_out(held_out) if spec == "shapes" else ()
    min_objects, max_objects = _parse_objects(objects)
    if spec != "shapes" and (min_objects, max_objects) != (1, 3):
        raise click.UsageError("--objects applies to --data shapes only")
    if spec == "shapes":
        dataset = ShapesDataset(
            ShapesConfig(
                num_frames=frames,
                height=size,
                width=size,
                fps=fps or 8.0,
                seed=train_cfg.seed,
                held_out=combos,
                num_clips=clips,
                start_words=start_words,
                min_objects=min_objects,
                max_objects=max_objects,
            )
        )
    else:
        dataset = build_dataset(
            spec,
            num_frames=frames,
            height=size,
            width=size,
            fps=fps,
            seed=train_cfg.seed,
            clips_per_video=max(1, clips // 100),
        )
    description = f"{spec} {frames}x{size}x{size} held_out={combos}"
    if spec == "shapes" and start_words:
        description += f" start_words={start_words}"
    if (min_objects, max_objects) != (1, 3):
        description += f" objects={min_objects}-{max_objects}"
    cache = build_latent_cache(
        dataset,
        vae,
        text,
        cache_dir or run_dir / "latents",
        num_clips=clips,
        description=description,
        workers=train_cfg.num_workers,
    )
    latents = LatentDataset(cache)
    if extra_caches:
        latents = _join_caches(latents, [LatentDataset(c) for c in extra_caches])
    if train_cfg.steps == 0:
        click.echo(f"latent cache ready: {cache} ({len(latents)} clips); --steps 0 trains nothing")
        return
    null, _ = text.encode([""])
    t2v_cfg = T2VConfig(
        flow=FlowConfig(shift=shift),
        text_dropout=text_dropout,
        motion=motion,
        frame_noise=frame_noise,
        latent_shift=vae.cfg.latent_shift,
        latent_scale=vae.cfg.latent_scale,
        vae=str(vae_path.resolve()) if vae_path else "vae3d",
    )
    sample_prompts = [latents[i]["caption"] for i in range(3)] + [
        f"a {c} {s} moves {d}" for c, s, d in combos if "*" not in (c, s, d)
    ][:1]

    def sampler(model, path, step):
        pipe = Pipeline(model, vae, text, t2v_cfg)
        videos = generate(
            pipe, sample_prompts, GenerateConfig(frames=frames, height=size, width=size, seed=0)
        )
        write_video(
            path, video_grid(list(videos), sample_prompts, columns=len(sample_prompts)), fps=fps or 8.0
        )
        path.with_suffix(".txt").write_text("\n".join(sample_prompts) + "\n")  # the grid's prompts, in order

    if init_from:
        init_config, init_state, _ = load_model(init_from, "dit")
        dit_cfg = DiTConfig(**init_config["dit"])
        dit_cfg = replace(
            dit_cfg,
            frame_embedding=dit_cfg.frame_embedding or frame_embedding,
            place_embedding=dit_cfg.place_embedding or place_embedding,
            text_refiner=max(dit_cfg.text_refiner, text_refiner),
        )
    else:
        dit_cfg = dit_preset(
            preset,
            attention=attention,
            in_channels=vae.cfg.z_channels,
            frame_embedding=frame_embedding,
            place_embedding=place_embedding,
            text_refiner=text_refiner,
        )
    task = T2VTask(
        dit_cfg, t2v_cfg, null[0], sampler=sampler, data_name=f"{description}, {len(latents)} clips"
    )
    if init_from:
        # Newly added frame / place embeddings and text refiner layers start as no-ops.
        load_init(
            task.model, init_state, init_from, may_be_new=("frame_embed.", "place_embed.", "text_refiner.")
        )
    trainer = Trainer(train_cfg, task, latents, run_dir, collate=collate_latents)
    if trainer.resume():
        click.echo(f"resuming {run_dir} from step {trainer.step}")
    n_params = num_parameters(task.model)
    click.echo(
        f"DiT {init_from or preset}: {n_params / 1e6:.2f}M parameters; {len(latents)} cached clips in {cache}"
    )
    trainer.fit()
    click.echo(f"model: {run_dir / 'model'}")


@main.command()
@click.argument("prompt")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("outputs/clip.mp4"),
    show_default=True,
)
@click.option(
    "--checkpoint",
    "-c",
    type=click.Path(path_type=Path),
    default=None,
    help="Text-to-video model directory [default: the bundled model].",
)
@click.option("--frames", default=17, show_default=True)
@click.option("--fps", default=8.0, show_default=True)
@click.option("--size", default=64, show_default=True, help="Height and width (a multiple of 16).")
@click.option("--steps", default=20, show_default=True)
@click.option("--cfg", "text_scale", default=4.0, show_default=True, help="Text guidance scale (1 = off).")
@click.option("--solver", type=click.Choice(["euler", "heun"]), default="euler", show_default=True)
@click.option("--seed", default=0, show_default=True)
@_LAG
@click.option("--negative", default="", help="Negative prompt (what to steer away from).")
@friendly_errors
def generate(
    prompt, output, checkpoint, frames, fps, size, steps, text_scale, solver, seed, lag, negative
) -> None:
    """Generate a video from PROMPT and print its path."""
    from filmstrip.io import write_video
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
    pipe = load_pipeline(checkpoint)
    check_request(pipe, [prompt], cfg)
    video = run(pipe, [prompt], cfg, negative=negative)
    click.echo(str(write_video(output, video[0], fps=fps)))


@main.group("eval")
def eval_group() -> None:
    """Evaluate trained models."""


@eval_group.command("adherence")
@click.option(
    "--checkpoint",
    "-c",
    type=click.Path(path_type=Path),
    default=None,
    help="Text-to-video model directory [default: the bundled model].",
)
@click.option("--prompts", default=200, show_default=True, help="Half seen in training, half held out.")
@click.option("--frames", default=17, show_default=True)
@click.option("--size", default=64, show_default=True)
@click.option("--steps", default=20, show_default=True)
@click.option("--cfg", "text_scale", default=4.0, show_default=True)
@click.option("--seed", default=0, show_default=True)
@_LAG
@click.option(
    "--held-out",
    "held_out",
    multiple=True,
    default=_HELD_OUT,
    show_default=True,
    help="The combinations the model was trained without (as in `train t2v`).",
)
@click.option(
    "--samples",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Videos per prompt, each from its own noise: more average out the sampling noise.",
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
@friendly_errors
def eval_adherence(
    checkpoint,
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
):
    """Prompt adherence of a `shapes` text-to-video model: colour, shape, direction, count."""
    import json

    from filmstrip.eval.prompt_suite import SuiteConfig, run_suite
    from filmstrip.pipelines.generate import GenerateConfig, load_pipeline

    suite = SuiteConfig(
        num_prompts=prompts,
        frames=frames,
        size=size,
        train_seed=train_seed,
        held_out=_parse_held_out(held_out),
        start_words=start_words,
        samples=samples,
    )
    gen = GenerateConfig(
        frames=frames, height=size, width=size, steps=steps, text_scale=text_scale, seed=seed, lag=lag
    )
    result = run_suite(load_pipeline(checkpoint), suite, gen)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=1))
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


if __name__ == "__main__":
    main()
