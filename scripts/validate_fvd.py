"""FVD's validation as in its paper (Unterthiner et al. 2018, section 4.1): corrupt real clips
at increasing strength and check that FVD against clean real clips rises with it.

    python scripts/validate_fvd.py [--clips 32] [--frames 16] [--size 64] [--speed 0.1,0.25]

Two disjoint sets of `shapes` clips (different seeds): A is the reference, B is corrupted by
Gaussian noise (std 0.05 .. 0.4 in [-1, 1] units), Gaussian blur (sigma 0.5 .. 3 px) and frame
shuffling (2 .. all 16 frames moved, each clip its own permutation; `--shared-shuffle`: one
permutation per level for the whole set, which left the result to one draw), four levels each. B at
level 0 is the floor: two samples of the same distribution. Prints one table; deterministic.
`--speed` sets the objects' speed range in frame widths per second (the dataset's default is
0.1-0.25, a pixel or two per frame at 64 x 64, which makes shuffled frames hard to tell).

`--paired` measures B's corrupted copies against clean B itself instead of against A: the
floor is then exactly 0 and the sampling noise of two independent draws (hundreds of FVD
points at 32-64 clips) drops out, so what is left is how far each corruption moves the
feature distribution of the same clips.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from filmstrip.data import ShapesConfig, ShapesDataset
from filmstrip.eval.fvd import fvd, i3d_features
from filmstrip.eval.i3d import load_i3d

LEVELS = {
    "noise": [0.05, 0.1, 0.2, 0.4],
    "blur": [0.5, 1.0, 2.0, 3.0],
    "shuffle": [2, 4, 8, 16],
}


def clips(
    n: int, frames: int, size: int, seed: int, speed: tuple[float, float] = (0.1, 0.25)
) -> torch.Tensor:
    cfg = ShapesConfig(num_clips=n, num_frames=frames, height=size, width=size, seed=seed, speed=speed)
    data = ShapesDataset(cfg)
    return torch.stack([data[i]["video"] for i in range(n)])  # (N, 3, T, H, W) in [-1, 1]


def blur(video: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, round(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    k = k / k.sum()
    n, c, t, h, w = video.shape
    flat = video.transpose(1, 2).reshape(n * t * c, 1, h, w)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1))
    return flat.reshape(n, t, c, h, w).transpose(1, 2)


def shuffled_order(t: int, moved: int, g: torch.Generator) -> torch.Tensor:
    """Frame order with `moved` random frames trading places in a cycle."""
    frames = torch.randperm(t, generator=g)[:moved]
    order = torch.arange(t)
    order[frames] = frames[torch.roll(torch.arange(moved), 1)]
    return order


def corrupt(
    video: torch.Tensor, kind: str, level: float, seed: int = 0, per_clip: bool = False
) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "noise":
        return (video + level * torch.randn(video.shape, generator=g)).clamp(-1, 1)
    if kind == "blur":
        return blur(video, level)
    t = video.shape[2]
    if not per_clip:  # one permutation for the whole set
        return video[:, :, shuffled_order(t, int(level), g)]
    return torch.stack([clip[:, shuffled_order(t, int(level), g)] for clip in video])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument(
        "--speed", default="0.1,0.25", help="Object speeds, frame widths per second: low,high."
    )
    parser.add_argument(
        "--paired", action="store_true", help="Reference each corrupted set to its own clean clips."
    )
    parser.add_argument(
        "--shared-shuffle",
        action="store_true",
        help="One frame permutation per level for the whole set (sessions 14-15) instead of one per clip.",
    )
    parser.add_argument("--kinds", default="noise,blur,shuffle", help="Which corruptions to run.")
    args = parser.parse_args()
    speed = tuple(float(v) for v in args.speed.split(","))
    start = time.perf_counter()
    model = load_i3d()
    a = clips(args.clips, args.frames, args.size, seed=1000, speed=speed)
    b = clips(args.clips, args.frames, args.size, seed=2000, speed=speed)

    def features(video):
        return i3d_features(model, video.split(8), frames=args.frames)

    fb = features(b)
    fa = fb if args.paired else features(a)
    reference = "B itself (paired)" if args.paired else "an independent set A"
    print(
        f"{args.clips} clips per set, {args.frames} frames at {args.size}x{args.size}, resized to 224,"
        f" speeds {speed}, reference: {reference}"
    )
    print(f"{'corruption':10s} {'level':>6s} {'FVD':>9s}")
    print(f"{'none':10s} {'0':>6s} {fvd(fa, fb):9.2f}   (the floor)")
    for kind in args.kinds.split(","):
        levels = LEVELS[kind]
        for level in levels:
            print(
                f"{kind:10s} {level:6g} {fvd(fa, features(corrupt(b, kind, level, per_clip=not args.shared_shuffle))):9.2f}",
                flush=True,
            )
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
