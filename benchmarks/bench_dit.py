"""DiT speed on this machine: training throughput, achieved FLOP/s against a bf16 matmul
peak measured in the same run, and the time to generate one clip against sampling steps.

    python benchmarks/bench_dit.py [--preset small] [--batch 32] [--frames 17] [--size 64]

1. Peak: the best of several 2048^3 bf16 matmuls (autocast), the most this CPU/GPU does.
2. Training: forward + backward + AdamW under bf16 autocast on random latents of the shape
   the VAE makes for frames x size x size clips; tokens/s, and model FLOP/s (3x the forward
   FLOPs of `forward_flops`) as a fraction of the peak.
3. Sampling: `filmstrip generate`'s work for one clip (text encoding, denoising with guidance,
   VAE decoding) with the bundled model (random weights if none is bundled yet; speed does
   not depend on them), against the number of steps. Target: under 5 s for the default clip.
"""

from __future__ import annotations

import argparse

import torch
from timing import best_of

from filmstrip.models.conditioning import Conditioning
from filmstrip.models.dit import VideoDiT, forward_flops, num_parameters, preset


def matmul_peak(device: torch.device, n: int = 2048) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)

    def run():
        with torch.autocast(device.type, torch.bfloat16):
            (a @ b).sum().item()

    return 2 * n**3 / best_of(run)


def training(args, device: torch.device, peak: float) -> None:
    cfg = preset(args.preset, attention=args.attention)
    model = VideoDiT(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    lt, lh = 1 + (args.frames - 1) // 4, args.size // 8
    z = torch.randn(args.batch, cfg.in_channels, lt, lh, lh, device=device)
    t = torch.rand(args.batch, lt, device=device)
    ctx = torch.randn(args.batch, 12, cfg.context_dim, device=device)
    mask = torch.ones(args.batch, 12, dtype=torch.bool, device=device)

    def step():
        with torch.autocast(device.type, torch.bfloat16):
            loss = model(z, t, Conditioning(ctx, mask)).float().square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()

    seconds = best_of(step, repeats=3)
    flops = forward_flops(cfg, (lt, lh, lh), context_len=12)["total"] * 3 * args.batch
    tokens = args.batch * lt * (lh // cfg.patch[1]) * (lh // cfg.patch[2])
    print(
        f"training  {args.preset} ({num_parameters(model) / 1e6:.1f}M, {cfg.attention}), batch {args.batch} x "
        f"{lt}x{lh}x{lh} latents: {seconds * 1000:.0f} ms/step, {tokens / seconds:,.0f} tokens/s, "
        f"{flops / seconds / 1e12:.2f} TFLOP/s = {flops / seconds / peak:.0%} of the matmul peak"
    )


def sampling(args, device: torch.device) -> None:
    from filmstrip.checkpoint import BUNDLED_DIR
    from filmstrip.pipelines.generate import GenerateConfig, Pipeline, generate, load_pipeline

    if (BUNDLED_DIR / "t2v" / "config.json").exists():
        pipe, what = load_pipeline(device=device), "bundled model"
    else:
        from filmstrip.models.vae import load_vae
        from filmstrip.text.encoder import TextEncoder

        pipe = Pipeline(
            VideoDiT(preset(args.preset)).to(device).eval(), load_vae(device=device), TextEncoder(device)
        )
        what = f"random {args.preset} DiT + bundled VAE"
    prompt = ["a red circle moves to the right"]
    print(f"sampling one {args.frames}x{args.size}x{args.size} clip ({what}, guidance on), best of 3:")
    for steps in (1, 5, 10, 20, 40):
        cfg = GenerateConfig(frames=args.frames, height=args.size, width=args.size, steps=steps)
        seconds = best_of(lambda c=cfg: generate(pipe, prompt, c), repeats=3)
        default = "  <- default" if steps == GenerateConfig().steps else ""
        print(f"  {steps:3d} steps: {seconds:6.2f} s{default}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="small")
    parser.add_argument("--attention", default="full", choices=["full", "factorized"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    peak = matmul_peak(device)
    print(f"{device}, {torch.get_num_threads()} threads: bf16 matmul peak {peak / 1e12:.2f} TFLOP/s")
    training(args, device, peak)
    sampling(args, device)


if __name__ == "__main__":
    main()
