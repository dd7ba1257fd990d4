"""DiT speed on this machine, as ratios against baselines measured in the same run.

    python benchmarks/bench_dit.py [--preset small] [--batch 32] [--frames 17] [--size 64]
                                   [--precision auto] [--rounds 5] [--no-sampling]

Precision: bf16 autocast where the device runs it fast, float32 elsewhere (see
filmstrip/precision.py); `--precision` overrides.

1. Attention: the fused kernel (`scaled_dot_product_attention`) against the written-out
   product at this project's sequence lengths, training (forward + backward) and inference;
   the rule in models/attention.py follows this table.
2. RoPE: rotations from a table built once per forward (one complex multiply per layer)
   against recomputing cos/sin and stacking rotated halves in every layer.
3. Training: forward + backward + AdamW on random latents of the shape the VAE makes for
   frames x size x size clips; model FLOP/s (3x `forward_flops`) as a share of the peak, a
   2048^3 matmul timed in the same alternating rounds.
   With diffusers installed, the same step for its `WanTransformer3DModel` at equal width,
   depth, heads, MLP, patch and tokens, timed in alternating rounds: the time ratio.
   `--compile` puts both through torch.compile first.
4. Sampling forward (no gradients, a guided batch of 2 x 10 clips): filmstrip against Wan,
   each call as a step of a sampling run sees it (filmstrip's text work kept from the first).
5. Sampling: `filmstrip generate`'s work for one clip with the bundled model, against steps;
   and at the default steps, the text's work (refiner, cross-attention keys and values) done
   once per run against redone at every step, in alternating rounds.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch
import torch.nn.functional as F
from timing import best_of, interleaved

from filmstrip.models.attention import written_out_attention
from filmstrip.models.conditioning import Conditioning
from filmstrip.models.dit import VideoDiT, forward_flops, num_parameters, preset
from filmstrip.models.rope import apply_rope, grid_positions, rope_angles, rotations
from filmstrip.precision import autocast, use_bf16


def matmul_run(device: torch.device, bf16: bool, n: int = 2048):
    """One n^3 matmul in the precision training uses; its FLOP/s is the machine's peak. It is
    timed in the same alternating rounds as the model it is compared with, since these
    machines' speed drifts by up to 2x within minutes."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)

    def run():
        with autocast(bf16, device):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()

    return run, 2 * n**3


def attention_runs(q, k, v, mask, device: torch.device, bf16: bool) -> dict:
    """Training (forward + backward) and inference runs of both attention paths."""

    def fused(q, k, v, m):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m)

    def train(fn):
        def run():
            with autocast(bf16, device):
                out = fn(q, k, v, mask)
            out.float().sum().backward()

        return run

    def infer(fn):
        def run():
            with torch.no_grad(), autocast(bf16, device):
                fn(q, k, v, mask)

        return run

    return {"ft": train(fused), "wt": train(written_out_attention),
            "fi": infer(fused), "wi": infer(written_out_attention)}  # fmt: skip


def attention_table(device: torch.device, bf16: bool, rounds: int) -> None:
    print("attention, fused kernel time / written-out time (> 1: written-out faster):")
    shapes = [("cross, 80 x 12 text", 32, 80, 12), ("self, 80 (17x64x64)", 32, 80, 80),
              ("self, 160", 16, 160, 160), ("self, 256", 8, 256, 256), ("self, 320", 8, 320, 320),
              ("self, 1024", 2, 1024, 1024)]  # fmt: skip
    for label, b, n, keys in shapes:
        q = torch.randn(b, 4, n, 64, device=device, requires_grad=True)
        k, v = (torch.randn(b, 4, keys, 64, device=device, requires_grad=True) for _ in range(2))
        mask = torch.ones(b, 1, 1, keys, dtype=torch.bool, device=device)
        t = interleaved(attention_runs(q, k, v, mask, device, bf16), rounds)
        print(f"  {label:22s} training {t['ft'] / t['wt']:5.2f}   inference {t['fi'] / t['wi']:5.2f}")


def rope_per_layer(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """The baseline: cos and sin recomputed, rotated halves stacked, in every layer."""
    cos, sin = angles.cos(), angles.sin()
    pairs = x.float().unflatten(-1, (-1, 2))
    a, b = pairs[..., 0], pairs[..., 1]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2).to(x.dtype)


def rope_table(args, device: torch.device, rounds: int) -> None:
    lt, lh = 1 + (args.frames - 1) // 4, args.size // 16
    x = torch.randn(args.batch, 4, lt * lh * lh, 64, device=device, requires_grad=True)
    angles = rope_angles(grid_positions(lt, lh, lh, device=device), 64)

    def per_layer():
        rope_per_layer(x, angles).sum().backward()

    def table():
        apply_rope(x, rotations(angles)).sum().backward()

    t = interleaved({"per_layer": per_layer, "table": table}, rounds * 4)
    print(f"rope, forward + backward: per-layer recompute / table = {t['per_layer'] / t['table']:.2f}")


def wan_like(cfg):
    """diffusers' Wan transformer at filmstrip's configuration, or None without diffusers."""
    try:
        from diffusers import WanTransformer3DModel
    except ImportError:
        return None
    return WanTransformer3DModel(
        patch_size=cfg.patch,
        num_attention_heads=cfg.heads,
        attention_head_dim=cfg.head_dim,
        in_channels=cfg.in_channels,
        out_channels=cfg.in_channels,
        text_dim=cfg.context_dim,
        freq_dim=256,
        ffn_dim=int(cfg.width * cfg.mlp_ratio),
        num_layers=cfg.depth,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        eps=1e-6,
    )


def contenders(cfg, device: torch.device, batch: int, lt: int, lh: int, compile: bool = False):
    """{name: (model, forward(model) -> prediction)} on the same random inputs; with
    `compile`, each forward runs through torch.compile."""
    z = torch.randn(batch, cfg.in_channels, lt, lh, lh, device=device)
    t = torch.rand(batch, device=device)
    ctx = torch.randn(batch, 12, cfg.context_dim, device=device)
    mask = torch.ones(batch, 12, dtype=torch.bool, device=device)
    # One conditioning for every call, as a sampling run has: without gradients the DiT keeps
    # its work on the text (refined tokens, cross-attention keys and values) from the first.
    cond = Conditioning(ctx, mask, memo={})
    out = {"filmstrip": (VideoDiT(cfg).to(device), lambda m: m(z, t, cond))}
    wan = wan_like(cfg)
    if wan is not None:
        fwd = lambda m: m(hidden_states=z, timestep=t * 1000, encoder_hidden_states=ctx, return_dict=False)[0]  # noqa: E731
        out["diffusers Wan"] = (wan.to(device), fwd)
    if compile:
        out = {name: (torch.compile(model), fwd) for name, (model, fwd) in out.items()}
    return out


def training(args, cfg, device: torch.device, bf16: bool) -> None:
    lt, lh = 1 + (args.frames - 1) // 4, args.size // 8
    models = contenders(cfg, device, args.batch, lt, lh, args.compile)
    steps = {}
    for name, (model, forward) in models.items():
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)  # as the trainer runs it

        def step(model=model, forward=forward, opt=opt):
            with autocast(bf16, device):
                loss = forward(model).float().square().mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize()

        steps[name] = step
    steps["peak"], peak_flops = matmul_run(device, bf16)
    times = interleaved(steps, args.rounds)
    seconds, peak = times["filmstrip"], peak_flops / times["peak"]
    flops = forward_flops(cfg, (lt, lh, lh), context_len=12)["total"] * 3 * args.batch
    tokens = args.batch * lt * (lh // cfg.patch[1]) * (lh // cfg.patch[2])
    model = models["filmstrip"][0]
    print(
        f"training  {args.preset} ({num_parameters(model) / 1e6:.1f}M, {cfg.attention}), batch {args.batch} x "
        f"{lt}x{lh}x{lh} latents: {seconds * 1000:.0f} ms/step, {tokens / seconds:,.0f} tokens/s, "
        f"{flops / seconds / 1e12:.3f} TFLOP/s = {flops / seconds / peak:.0%} of the matmul peak "
        f"({peak / 1e12:.3f} TFLOP/s, 2048^3, median of the same rounds)"
    )
    _versus(times, "training step")


def sampling_forward(args, cfg, device: torch.device, bf16: bool) -> None:
    lt, lh = 1 + (args.frames - 1) // 4, args.size // 8
    models = contenders(cfg, device, 20, lt, lh, args.compile)
    calls = {}
    for name, (model, forward) in models.items():
        model.eval()

        def call(model=model, forward=forward):
            with torch.no_grad(), autocast(bf16, device):
                forward(model)

        calls[name] = call
    times = interleaved(calls, args.rounds * 3)
    print(f"sampling forward, batch 20 (2 guidance rows x 10 clips): {times['filmstrip'] * 1000:.0f} ms")
    _versus(times, "sampling forward")


def _versus(times: dict[str, float], what: str) -> None:
    if "diffusers Wan" in times:
        ratio = times["diffusers Wan"] / times["filmstrip"]
        print(
            f"  diffusers Wan {times['diffusers Wan'] * 1000:.0f} ms: filmstrip's {what} is {ratio:.2f}x faster"
        )
    else:
        print("  (install diffusers for the side-by-side with its Wan transformer)")


def sampling(args, device: torch.device, precision: str) -> None:
    from filmstrip.checkpoint import BUNDLED_DIR
    from filmstrip.pipelines.generate import GenerateConfig, Pipeline, generate, load_pipeline

    if (BUNDLED_DIR / "t2v" / "config.json").exists():
        pipe, what = load_pipeline(device=device, precision=precision), "bundled model"
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
    every_step = replace(pipe)  # the same modules; its denoiser drops the run's memo
    every_step.__dict__["denoiser"] = lambda z, t, cond, **kw: pipe.denoiser(
        z, t, replace(cond, memo=None), **kw
    )
    cfg = GenerateConfig(frames=args.frames, height=args.size, width=args.size)
    times = interleaved(
        {name: lambda p=p: generate(p, prompt, cfg) for name, p in (("once", pipe), ("every", every_step))},
        args.rounds * 2,
    )
    print(f"  text work once per run / at every step: {times['every'] / times['once']:.2f}x faster")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="small")
    parser.add_argument("--attention", default="full", choices=["full", "factorized"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-sampling", dest="sampling", action="store_false")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models (minutes).")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bf16 = use_bf16(args.precision, device)
    torch.manual_seed(0)
    print(f"{device}, {torch.get_num_threads()} threads, {'bf16' if bf16 else 'float32'}")
    attention_table(device, bf16, args.rounds)
    rope_table(args, device, args.rounds)
    cfg = preset(args.preset, attention=args.attention)
    training(args, cfg, device, bf16)
    sampling_forward(args, cfg, device, bf16)
    if args.sampling:
        sampling(args, device, args.precision)


if __name__ == "__main__":
    main()
