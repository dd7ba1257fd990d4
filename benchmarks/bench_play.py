"""Live play of the bundled world model: frames/s and ms per frame of `WorldModelEnv.step`
(the next frame in N flow steps, plus the reward and end heads) at 64x64, batch 1, as a
person playing sees it, for 1-3 steps in fp32 and bf16. Ratios are against 3 steps in fp32
(DIAMOND's default sampler settings), measured in the same run. The headless pygame loop
(`play`, drawing included) is timed once at the fastest setting.

    python benchmarks/bench_play.py [--frames 200] [--rounds 3] [--checkpoint DIR]
"""

from __future__ import annotations

import argparse
import os

import torch
from timing import interleaved

from filmstrip.precision import bf16_is_fast
from filmstrip.world.env import WorldModelEnv
from filmstrip.world.play import PlayConfig, play
from filmstrip.world.rollout import SampleConfig


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--checkpoint", default=None)
    args = parser.parse_args()
    bf16 = bf16_is_fast(torch.device("cpu"))
    print(f"native bf16 on this CPU: {bf16}; torch threads: {torch.get_num_threads()}")
    settings = {
        f"{steps} step{'s' * (steps > 1)} {'bf16' if b else 'fp32'}": SampleConfig(steps=steps, bf16=b)
        for steps in (3, 2, 1)
        for b in ((False, True) if bf16 else (False,))
    }
    envs = {name: WorldModelEnv(args.checkpoint, cfg) for name, cfg in settings.items()}

    def run(env: WorldModelEnv) -> None:
        env.reset(seed=0)
        for k in range(args.frames):
            env.step(k % env.action_space.n)

    times = interleaved({name: (lambda e=env: run(e)) for name, env in envs.items()}, args.rounds)
    base = times["3 steps fp32"]
    for name, seconds in times.items():
        print(
            f"{name:>13}: {args.frames / seconds:6.1f} frames/s, {1000 * seconds / args.frames:5.1f} ms/frame, "
            f"{base / seconds:.2f}x the 3-step fp32 rate"
        )
    fastest = min(times, key=times.get)
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    stats = play(envs[fastest], "pong", PlayConfig(fps=0, frames=args.frames), actions=lambda n: n % 3)
    print(f"headless play loop at {fastest} (drawing included): {stats.fps:.1f} frames/s")


if __name__ == "__main__":
    main()
