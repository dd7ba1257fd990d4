"""`filmstrip vae`: train and use the video autoencoders (3D VAE, 2D baseline, FSQ)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from filmstrip.cli import echo_main
from filmstrip.cli.generate import DEVICE
from filmstrip.cli.recipe_options import RUN_DECLS, Opt, count_option, recipe_options, trainer_opts
from filmstrip.errors import InputError
from filmstrip.train.recipes import VAERecipe


@click.group()
def vae() -> None:
    """Train and use the video autoencoders (3D VAE, 2D baseline, FSQ)."""


def _widths(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(c) for c in value.split(","))
    except ValueError:
        raise InputError(f"--channels takes integers like 48,96,144, got {value!r}") from None


@vae.command("train")
@recipe_options(
    VAERecipe,
    [
        Opt(("--data",), "data", "shapes, digits or folder:PATH; repeat to mix.", {"multiple": True}),
        Opt(("--preset",), "preset", "vae3d, vae3d21, vae2d, fsq3d, tiny, ..."),
        Opt(
            ("--channels",),
            "channels",
            "Width per resolution level, finest first, e.g. 48,96,144 [default: the preset's].",
            {"default": None},
            convert=_widths,
        ),
        Opt(
            ("--temporal-factor",),
            "temporal_factor",
            "Time compression, a power of two (1 + k*factor frames -> 1 + k) [default: the preset's].",
            {"type": int},
        ),
        Opt(
            ("--latent-channels",),
            "latent_channels",
            "KL latent channels [default: the preset's].",
            {"type": int},
        ),
        Opt(
            RUN_DECLS,
            "run",
            "Run folder (checkpoints, log, samples); an existing run resumes.",
            {"type": click.Path(file_okay=False), "show_default": False},
        ),
        Opt(
            ("--init",),
            "init",
            "Start from these weights (fine-tuning); the model config comes from them.",
            {"type": click.Path()},
        ),
        Opt(
            ("--frames",), "frames", "Frames per training clip (1 + k * the temporal factor suits a 3D VAE)."
        ),
        Opt(("--size",), "size", "Frame size (bucket area for folders)."),
        Opt(("--crop",), "crop", "Train on random square crops of this size.", {"type": int}),
        Opt(("--fps",), "fps", "Sampling rate [default: 8, or each video's own].", {"type": float}),
        Opt(("--kl",), "loss.kl", "KL weight."),
        Opt(("--l1",), "loss.l1", "L1 weight (MSE has weight 1)."),
        Opt(("--ssim-weight",), "loss.ssim", "SSIM weight."),
        Opt(("--gan",), "loss.gan", "Adversarial weight; 0 = no discriminator."),
        Opt(("--gan-start",), "loss.gan_start", "Step at which the discriminator starts."),
        Opt(("--image-every",), "loss.image_every", "Every k-th step trains on single frames."),
        Opt(("--temporal",), "loss.temporal", "Weight of the flicker (temporal difference) loss."),
        Opt(
            ("--freeze-encoder",),
            "freeze_encoder",
            "Train the decoder only (with --init): keeps the latent space of models trained on it.",
            {"is_flag": True},
        ),
        Opt(
            ("--time-upsample",),
            "time_upsample",
            "How the decoder doubles time [default: the preset's, or --init's]; 'learned' can be "
            "added to a trained 'repeat' decoder with --init (it starts as a repeat).",
            {"type": click.Choice(["repeat", "learned"])},
        ),
        *trainer_opts(),
    ],
)
def vae_train(recipe: VAERecipe) -> None:
    """Train an autoencoder on built-in data or your own footage (folder:PATH)."""
    from filmstrip.train.recipes import train_vae

    echo_main(f"model: {train_vae(recipe, log=echo_main)}")


_CHECKPOINT = click.option(
    "--checkpoint",
    "-c",
    type=click.Path(path_type=Path),
    default=None,
    help="Model directory [default: the bundled 3D VAE].",
)


def _shape_of(vae_config: dict) -> dict:
    """What makes latents of one autoencoder readable by another: its shape, not its scale."""
    return json.loads(
        json.dumps({k: v for k, v in vae_config.items() if k not in ("latent_shift", "latent_scale")})
    )


_ALLOW_PARTIAL = click.option(
    "--allow-partial", is_flag=True, help="Use the frames that decode from a truncated or corrupt video."
)


def _read_for_vae(
    path: Path,
    frames: int | None,
    size: int | None,
    fps: float | None,
    allow_partial: bool,
    start: float = 0.0,
):
    """(1, 3, T, H, W) float clip from `start` seconds, resized so its short side is `size`
    and cropped to /8."""
    import torch

    from filmstrip.eval.reconstruction import crop_to_multiple
    from filmstrip.io import probe, read_video

    info = probe(path)
    target = None
    if size:
        scale = size / min(info.height, info.width)
        target = (max(8, round(info.height * scale)), max(8, round(info.width * scale)))
    video, clip = read_video(
        path,
        num_frames=frames,
        fps=fps,
        size=target,
        start=start,
        dtype=torch.float32,
        allow_partial=allow_partial,
    )
    return crop_to_multiple(video.unsqueeze(0), 8), clip.fps


_TILE = click.option(
    "--tile",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Decode in spatial tiles of this many latent pixels, a quarter overlapping, for frames too "
    "large to decode at once (0: whole frames). Exact away from tile borders for a norm='pixel' VAE; "
    "a GroupNorm VAE (the bundled one) loses some fidelity (docs/RESULTS.md).",
)


@vae.command("reconstruct")
@click.argument("input_path", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@_CHECKPOINT
@click.option("--frames", type=int, default=None, help="Read only this many frames [default: all].")
@click.option("--size", type=int, default=None, help="Resize so the short side is this [default: as is].")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None)
@click.option("--side-by-side", is_flag=True, help="Write input and reconstruction next to each other.")
@_TILE
@_ALLOW_PARTIAL
@DEVICE
def vae_reconstruct(
    input_path, output, checkpoint, frames, size, fps, side_by_side, tile, allow_partial, device
) -> None:
    """Encode and decode a video; print PSNR, SSIM and flicker against the input."""
    import torch

    from filmstrip.eval.metrics import flicker, psnr, ssim
    from filmstrip.eval.reconstruction import reconstruct
    from filmstrip.io import write_video
    from filmstrip.models.vae import load_vae

    model = load_vae(checkpoint, device)
    x, rate = _read_for_vae(input_path, frames, size, fps, allow_partial)
    recon = reconstruct(model, x, tile=tile)
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
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None)
@_ALLOW_PARTIAL
@DEVICE
def vae_encode(input_path, output, checkpoint, frames, size, fps, allow_partial, device) -> None:
    """Encode a video to a latent file (it records which autoencoder made it)."""
    import torch

    from filmstrip.checkpoint import reference, save_tensors_atomic
    from filmstrip.models.vae import load_vae

    model = load_vae(checkpoint, device)
    x, rate = _read_for_vae(input_path, frames, size, fps, allow_partial)

    with torch.no_grad():
        z = model.encode_chunked(x.to(next(model.parameters()).device)).cpu()
    output.parent.mkdir(parents=True, exist_ok=True)
    save_tensors_atomic(
        output,
        {"latents": z[0]},
        metadata={
            "fps": str(rate),
            "num_frames": str(x.shape[2]),
            "checkpoint": reference(checkpoint, "vae3d"),  # decodable from any folder
            "vae": json.dumps(_shape_of(asdict(model.cfg))),
        },
    )
    click.echo(f"{output}: latents {tuple(z.shape[1:])} from {tuple(x.shape[1:])}")


@vae.command("decode")
@click.argument("latent_path", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@_CHECKPOINT
@_TILE
@DEVICE
def vae_decode(latent_path, output, checkpoint, tile, device) -> None:
    """Decode a latent file written by `filmstrip vae encode` to a video."""
    import torch
    from safetensors import safe_open

    from filmstrip.io import write_video
    from filmstrip.models.vae import load_vae

    if not latent_path.exists():
        raise InputError(f"{latent_path}: no such latent file")
    try:
        with safe_open(str(latent_path), "pt") as f:
            meta = f.metadata() or {}
            z = f.get_tensor("latents")
    except Exception as e:
        raise InputError(
            f"{latent_path}: not a latent file written by `filmstrip vae encode` ({e})"
        ) from None
    model = load_vae(checkpoint or meta.get("checkpoint"), device)
    if "vae" in meta and json.loads(meta["vae"]) != _shape_of(asdict(model.cfg)):
        raise InputError(
            f"{latent_path}: these latents were made by another autoencoder ({meta.get('checkpoint')}); "
            "decode them with that one (--checkpoint)"
        )
    with torch.no_grad():
        frames = int(meta.get("num_frames", 0)) or None
        z = z.unsqueeze(0).float().to(next(model.parameters()).device)
        x = (
            model.decode_tiled(z, tile, tile // 4, num_frames=frames)
            if tile
            else model.decode_chunked(z, num_frames=frames)
        )
    path = write_video(output, x[0].clamp(-1, 1), fps=float(meta.get("fps", 8)))
    click.echo(f"{path}: {x.shape[2]} frames {x.shape[3]}x{x.shape[4]}")


@vae.command("compare")
@click.argument("videos", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-c",
    "--checkpoint",
    "models",
    multiple=True,
    required=True,
    help="NAME=PATH of an autoencoder (a run's model folder or a bundled name); repeat to compare several.",
)
@click.option("--size", default=128, show_default=True, help="Resize so the short side is this.")
@click.option("--frames", default=33, show_default=True, help="Frames read from the start of each video.")
@click.option("--start", type=float, default=0.0, show_default=True, help="Seconds to skip first.")
@click.option("--lpips/--no-lpips", default=True, show_default=True, help="Also ST-LPIPS (AlexNet).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@DEVICE
def vae_compare(videos, models, size, frames, start, lpips, as_json, device) -> None:
    """Reconstruct real clips with several autoencoders, beside the bicubic round trips by 8
    (about as many values as a 4x8x8 latent of 16 channels) and by 4: PSNR, SSIM, LPIPS and
    flicker per clip, then the mean."""
    import json

    from filmstrip.eval.lpips import load_lpips
    from filmstrip.eval.reconstruction import compare
    from filmstrip.io import probe
    from filmstrip.models.vae import load_vae

    named = {}
    for spec in models:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise click.UsageError(f"--checkpoint takes NAME=PATH, got {spec!r}")
        named[name] = load_vae(path, device)
    perceptual = load_lpips("alex") if lpips else None
    table: dict[str, dict] = {}
    for path in videos:
        info = probe(path)
        available = info.num_frames - round(start * info.fps)
        if available <= 0:
            raise InputError(f"{path}: no frames after {start} s")
        # Only the frames compared are decoded, not the whole video.
        x, _ = _read_for_vae(path, min(frames, available), size, None, False, start)
        table[str(path)] = {"shape": list(x.shape[2:]), **compare(x, named, perceptual)}
    if as_json:
        click.echo(json.dumps(table))
        return
    names = [*named, "bicubic /8", "bicubic /4"]
    metrics = ["psnr", "ssim", "lpips", "flicker"] if lpips else ["psnr", "ssim", "flicker"]
    click.echo(f"{'clip':24s} {'method':14s} " + " ".join(f"{m:>8s}" for m in metrics))
    for path, rows in table.items():
        t, h, w = rows["shape"]
        for name in names:
            values = " ".join(f"{rows[name].get(m, float('nan')):8.4f}" for m in metrics)
            click.echo(f"{Path(path).name[:14] + f' {w}x{h}x{t}':24s} {name:14s} {values}")
    for name in names:
        mean = {m: sum(rows[name].get(m, 0.0) for rows in table.values()) / len(table) for m in metrics}
        click.echo(f"{'mean':24s} {name:14s} " + " ".join(f"{mean[m]:8.4f}" for m in metrics))


@vae.command("eval")
@_CHECKPOINT
@click.option("--data", "spec", default="shapes", show_default=True)
@click.option("--split", type=click.Choice(["train", "test"]), default="test", show_default=True)
@count_option("--clips", 64, "Held-out clips to reconstruct.")
@click.option("--frames", default=17, show_default=True, type=click.IntRange(min=1))
@click.option("--size", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@DEVICE
def vae_eval(checkpoint, spec, split, clips, frames, size, fps, as_json, device) -> None:
    """PSNR, SSIM and flicker of an autoencoder on held-out clips (and FSQ codebook usage)."""
    import json

    from filmstrip.data import build_dataset
    from filmstrip.eval.reconstruction import evaluate
    from filmstrip.models.vae import load_vae

    model = load_vae(checkpoint, device)
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
