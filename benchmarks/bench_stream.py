"""Streaming a long video: is the cost per frame bounded?

Rolls the causal model out with its KV cache (rolling window + sink, pipelines/stream.py) to
`--frames` pixel frames at 64x64 and reports, around pixel frames 16, 256 and 1,024:

* ms per pixel frame of the whole loop (DiT steps, the cache write, the VAE's streaming
  decode), and its ratio to frame 16 (target: <= 1.2 at 1,024);
* the KV cache's bytes and the process's resident memory (target: flat);
* the same chunk made by recomputing the whole past every step instead (a causal forward
  over every frame so far, no cache): ms per pixel frame and the cache's speed-up over it
  (target: >= 10x at 1,024), measured in the same run;
* throughput: frames/s over the whole rollout (target: >= 24 at 64x64 on a 2-core CPU).

    python benchmarks/bench_stream.py [--frames 1024] [--steps 4] [--checkpoint t2v_causal]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from filmstrip.diffusion.guidance import guided
from filmstrip.diffusion.sampling import schedule
from filmstrip.models.kv_cache import CacheConfig
from filmstrip.pipelines.denoise import load_pipeline
from filmstrip.pipelines.prepare import prepare_text, stack_levels
from filmstrip.pipelines.stream import StreamConfig, stream
from filmstrip.pipelines.timeline import parse_timeline

MARKS = (16, 256, 1024)  # pixel frames


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def recompute_chunk_seconds(
    pipe, past_latents: int, cfg: StreamConfig, prompt: str, repeats: int = 2
) -> float:
    """Seconds to denoise one latent frame by a causal forward over all `past_latents` frames
    before it at every step (what a model without a cache must do)."""
    levels = [lv.to(pipe.device) for lv in stack_levels([prepare_text(pipe.text, [prompt])])]
    c, h, w = pipe.dit.cfg.in_channels, cfg.height // 8, cfg.width // 8
    past = torch.randn(1, c, past_latents, h, w)
    velocity = guided(pipe.denoiser, levels, [cfg.text_scale])
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        x = torch.randn(1, c, 1, h, w)
        sched = schedule(cfg.steps, 1)
        for i in range(cfg.steps):
            t = torch.cat([torch.zeros(1, past_latents), sched[i][None]], dim=1)
            v = velocity(torch.cat([past, x], dim=2), t)[:, :, -1:]
            x = x + (sched[i + 1] - sched[i]) * v
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--window", type=int, default=3)
    parser.add_argument("--sink", type=int, default=1)
    parser.add_argument("--checkpoint", default="t2v_causal")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    pipe = load_pipeline(args.checkpoint, precision=args.precision)
    prompt = "a red circle moves right"
    cfg = StreamConfig(
        seconds=args.frames / 8, steps=args.steps, cache=CacheConfig(window=args.window, sink=args.sink)
    )
    print(f"torch threads: {torch.get_num_threads()}; DiT in {'bf16' if pipe.bf16 else 'fp32'}; "
          f"{args.steps} steps per latent frame, window {args.window} + sink {args.sink}")  # fmt: skip
    # 1. The cached rollout, timed chunk by chunk.
    marks: dict[int, tuple[float, float]] = {}
    made, per_frame = 0, []
    start = last = time.perf_counter()
    for frames in stream(pipe, parse_timeline([prompt]), cfg):
        now = time.perf_counter()
        n = frames.shape[1]
        made += n
        per_frame.append((made, (now - last) / n))
        last = now
        for m in MARKS:
            if m not in marks and made >= m:
                marks[m] = (rss_mib(), 0.0)
    total = time.perf_counter() - start

    def around(frame: int) -> float:
        """Median ms per frame over the chunks ending within 32 frames of `frame`."""
        near = sorted(ms for f, ms in per_frame if abs(f - frame) <= 32 and f > 1)
        return 1000 * near[len(near) // 2]

    # 2. The same chunk by recomputing the past, at the same points.
    tf = pipe.vae.cfg.temporal_factor
    print(f"\n{'pixel frame':>11} | {'cache ms/frame':>14} | {'vs frame 16':>11} | {'RSS MiB':>8} | "
          f"{'recompute ms/frame':>18} | {'cache speed-up':>14}")  # fmt: skip
    base = around(MARKS[0])
    for m in MARKS:
        if m not in marks:
            continue
        cached = around(m)
        past = (m - 1) // tf + 1  # latent frames before the chunk that shows frame m
        recompute = 1000 * recompute_chunk_seconds(pipe, past, cfg, prompt) / tf
        print(f"{m:>11} | {cached:>14.2f} | {cached / base:>10.2f}x | {marks[m][0]:>8.0f} | "
              f"{recompute:>18.1f} | {recompute / cached:>13.1f}x")  # fmt: skip
    print(f"\nthroughput: {made} frames in {total:.1f} s = {made / total:.1f} frames/s "
          f"({made / total / 8:.1f}x real time at 8 fps)")  # fmt: skip


if __name__ == "__main__":
    main()
