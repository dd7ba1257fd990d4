"""bf16 against fp32 on this machine, in the same run: sampling with the bundled model
(`generate`, a batch of clips, guidance on) and a training step of the `small` DiT (forward,
backward, AdamW) on latents of the shape 17 x 64 x 64 clips make. Ratios only.

    python benchmarks/bench_precision.py [--clips 8] [--batch 32] [--rounds 5]
"""

from __future__ import annotations

import argparse

import torch
from timing import interleaved

from filmstrip.models.conditioning import Conditioning
from filmstrip.models.dit import VideoDiT, preset
from filmstrip.pipelines.generate import GenerateConfig, generate, load_pipeline
from filmstrip.precision import autocast, bf16_is_fast


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    cpu = torch.device("cpu")
    print(f"native bf16 on this CPU: {bf16_is_fast(cpu)}")
    prompts = ["a red circle moves to the right"] * args.clips
    pipes = {p: load_pipeline(precision=p) for p in ("fp32", "bf16")}
    times = interleaved(
        {p: (lambda p=p: generate(pipes[p], prompts, GenerateConfig())) for p in pipes}, args.rounds
    )
    print(f"sampling {args.clips} clips: fp32 {times['fp32']:.2f} s, bf16 {times['bf16']:.2f} s, "
          f"bf16 is {times['fp32'] / times['bf16']:.2f}x faster")  # fmt: skip

    torch.manual_seed(0)
    model = VideoDiT(preset("small", in_channels=16, context_dim=384))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    z = torch.randn(args.batch, 16, 5, 8, 8)
    t = torch.rand(args.batch, 5)
    cond = Conditioning(
        context=torch.randn(args.batch, 12, 384), context_mask=torch.ones(args.batch, 12, dtype=torch.bool)
    )

    def step(bf16: bool):
        with autocast(bf16, cpu):
            loss = model(z, t, cond).float().square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    times = interleaved({"fp32": lambda: step(False), "bf16": lambda: step(True)}, args.rounds)
    print(f"training step, batch {args.batch}: fp32 {times['fp32']:.3f} s, bf16 {times['bf16']:.3f} s, "
          f"bf16 is {times['fp32'] / times['bf16']:.2f}x faster")  # fmt: skip


if __name__ == "__main__":
    main()
