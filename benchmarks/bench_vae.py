"""VAE speed and memory on this machine: encode/decode frames per second in fp32 and bf16,
and the working memory of streaming encode + decode as the clip grows 16x.

    python benchmarks/bench_vae.py [--size 64] [--frames 17] [--batch 4]

Speed: the 3D VAE, the 2D baseline and the FSQ model (random weights: speed does not depend
on them), best of 5, with ratios against fp32 measured in the same run.
Memory: each clip length runs in a fresh process that generates its frames chunk by chunk,
encodes and decodes them in a stream and keeps only a running error sum, so what grows with
the clip is the model's working memory and nothing else. Working memory = peak RSS during
the work (VmHWM, reset after the model is built) minus the RSS at that point. Also shown: the one-shot (unchunked) path, which grows with T.
Tiling: the working memory of decoding 17 frames as the frame grows from 256 to 1024 px:
whole frames streamed in time ("frames"), spatial tiles of 32 latent pixels streamed in time
with every tile's cache kept ("tiles", `decode_tiled_stream`), and one tile at a time through
all of time into the output clip ("tiled", `decode_tiled`; the 17 output frames, 204 MiB at
1024 px, are counted).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import torch
from timing import best_of

from filmstrip.models.vae import VideoVAE, preset


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def reset_peak_rss() -> None:
    """Linux: writing 5 to clear_refs resets the peak RSS (VmHWM), so the peak measured after
    the work is the work's own, not that of importing torch."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def frames(t0: int, n: int, size: int) -> torch.Tensor:
    """Frames t0 .. t0+n of a procedural moving pattern, (1, 3, n, size, size) in [-1, 1]."""
    t = torch.arange(t0, t0 + n, dtype=torch.float32).view(1, 1, n, 1, 1)
    y = torch.linspace(0, 1, size).view(1, 1, 1, size, 1)
    x = torch.linspace(0, 1, size).view(1, 1, 1, 1, size)
    phase = torch.tensor([0.0, 2.0, 4.0]).view(1, 3, 1, 1, 1)
    return torch.sin(12 * x + 7 * y + 0.2 * t + phase) * torch.cos(9 * y - 0.1 * t)


@torch.no_grad()
def speed(args) -> None:
    print(
        f"speed: batch {args.batch} x {args.frames} frames x {args.size}x{args.size}, best of 5, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"{'model':8} {'dtype':5} {'encode fps':>11} {'decode fps':>11} {'enc vs fp32':>12} {'dec vs fp32':>12}"
    )
    x = frames(0, args.frames, args.size).expand(args.batch, -1, -1, -1, -1).contiguous()
    for name in ("vae3d", "vae2d", "fsq3d"):
        model = VideoVAE(preset(name)).eval()
        z = model.encode(x)
        base = None
        for dtype in ("fp32", "bf16"):
            with torch.autocast("cpu", torch.bfloat16, enabled=dtype == "bf16"):
                t_enc = best_of(lambda m=model: m.encode(x))
                t_dec = best_of(lambda m=model, z=z: m.decode(z))
            n = args.batch * args.frames
            enc, dec = n / t_enc, n / t_dec
            base = base or (enc, dec)
            print(f"{name:8} {dtype:5} {enc:11.0f} {dec:11.0f} {enc / base[0]:11.2f}x {dec / base[1]:11.2f}x")


@torch.no_grad()
def memory_child(num_frames: int, size: int, mode: str) -> dict:
    torch.manual_seed(0)
    model = VideoVAE(preset("vae3d")).eval()
    reset_peak_rss()
    base = rss_mib()
    err, count = 0.0, 0
    if mode == "tiled":
        z = torch.randn(1, 16, 5, size // 8, size // 8)
        out = model.decode_tiled(z, 32, 8, chunk_latents=1)
        err, count = float(out.square().sum()), out.shape[2]
    elif mode in ("frames", "tiles"):
        z = torch.randn(1, 16, 5, size // 8, size // 8)
        chunks = z.split(1, dim=2)
        pieces = model.decode_stream(chunks) if mode == "frames" else model.decode_tiled_stream(chunks, 32, 8)
        for piece in pieces:
            err += float(piece.square().sum())
            count += piece.shape[2]
    elif mode == "stream":
        chunk = 4

        def source():
            yield frames(0, 1, size)
            for t0 in range(1, num_frames, chunk):
                yield frames(t0, min(chunk, num_frames - t0), size)

        pixels = model.decode_stream(z for z in model.encode_stream(source()))
        for piece in pixels:
            t = piece.shape[2]
            ref = frames(count, t, size) if count + t <= num_frames else None
            if ref is not None:
                err += float((piece - ref).square().sum())
            count += t
    else:
        x = frames(0, num_frames, size)
        recon = model.decode(model.encode(x), num_frames)
        err, count = float((recon - x).square().sum()), num_frames
    return {
        "frames": num_frames,
        "mode": mode,
        "working_mib": peak_rss_mib() - base,
        "decoded": count,
        "checksum": err,
    }


def in_child(frames: int, size: int, mode: str) -> dict:
    """`memory_child` run in a fresh process, so each peak is its own."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", f"{frames},{size},{mode}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory(args) -> None:
    print(f"\nmemory: 3D VAE encode + decode of {args.mem_size}x{args.mem_size} clips, fresh process each")
    results = {
        (mode, n): in_child(n, args.mem_size, mode) for mode in ("stream", "oneshot") for n in (16, 256)
    }
    for mode in ("stream", "oneshot"):
        small, large = results[mode, 16]["working_mib"], results[mode, 256]["working_mib"]
        print(
            f"{mode:8} 16 frames {small:7.1f} MiB   256 frames {large:7.1f} MiB   ratio {large / small:5.2f}"
            + ("   (target <= 1.2)" if mode == "stream" else "")
        )


def tiling(args) -> None:
    print("\ntiling: 3D VAE decode of 17 frames streamed in time, fresh process each")
    modes = ("frames", "tiles", "tiled")
    results = {(mode, size): in_child(17, size, mode) for mode in modes for size in (256, 1024)}
    for mode in ("frames", "tiles", "tiled"):
        small, large = results[mode, 256]["working_mib"], results[mode, 1024]["working_mib"]
        print(f"{mode:8} 256 px {small:7.1f} MiB   1024 px {large:7.1f} MiB   ratio {large / small:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--mem-size", type=int, default=128)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    if args.child:
        n, size, mode = args.child.split(",")
        print(json.dumps(memory_child(int(n), int(size), mode)))
        return
    if not args.skip_speed:
        speed(args)
    if not args.skip_memory:
        memory(args)
    tiling(args)


if __name__ == "__main__":
    main()
