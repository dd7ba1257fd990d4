"""Inversion reconstruction of the bundled model: invert held-out `shapes` clips under their own
captions, regenerate under the same captions, and compare with the clips (docs/RESULTS.md,
session 12).

    python scripts/measure_inversion.py
"""

import torch

from filmstrip.data import build_dataset
from filmstrip.eval.metrics import psnr
from filmstrip.pipelines.denoise import decode, denoise, encode, make_schedule
from filmstrip.pipelines.edit import invert
from filmstrip.pipelines.generate import load_pipeline
from filmstrip.pipelines.prepare import prepare_text, stack_levels

pipe = load_pipeline()
ds = build_dataset("shapes", num_frames=17, split="test", seed=5)
items = [ds[i] for i in range(8)]
clips = torch.stack([it["video"] for it in items])
prompts = [it["caption"] for it in items]
z = encode(pipe, clips)
vae_only = psnr(decode(pipe, z, 17), clips).mean()
print(f"VAE round trip alone: {vae_only:.2f} dB")
levels = stack_levels([prepare_text(pipe.text, prompts)])
for steps in (20, 50, 100):
    for scale in (1.0,):
        noise = invert(pipe, z, prompts, steps)
        back = denoise(pipe.dit, noise, make_schedule(pipe, z.shape, steps), levels, [scale])
        print(
            f"steps {steps}: invert + regenerate (guidance {scale}) PSNR {psnr(decode(pipe, back, 17), clips).mean():.2f} dB, latent max error {float((back - z).abs().max()):.3f}"
        )
