"""`filmstrip generate --seconds N [--stream] [--prompt "0s: ..." ...]`: a long video from the
causal model, written as it is made."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click


def generate_long(
    entries: list[str],
    output: Path,
    checkpoint: Path | None,
    seconds: float,
    fps: float,
    size: int,
    steps: int | None,
    text_scale: float,
    seed: int,
    window: int,
    sink: int,
    context_noise: float,
    streaming: bool,
    precision: str,
) -> None:
    """Roll the causal model out for `seconds`; with `streaming` (or output "-") every chunk
    is appended to a fragmented MP4 as it is made, so the file plays while it grows and
    Ctrl-C leaves a playable file of what was made."""
    import torch
    from tqdm import tqdm

    from filmstrip.io import check_output_path, write_video
    from filmstrip.io.stream_writer import StreamWriter
    from filmstrip.models.kv_cache import CacheConfig
    from filmstrip.pipelines.denoise import load_pipeline
    from filmstrip.pipelines.stream import StreamConfig, stream
    from filmstrip.pipelines.timeline import parse_timeline

    timeline = parse_timeline(entries)
    cfg = StreamConfig(
        seconds=seconds,
        fps=fps,
        height=size,
        width=size,
        steps=StreamConfig.steps if steps is None else steps,
        text_scale=text_scale,
        cache=CacheConfig(window=window, sink=sink),
        context_noise=context_noise,
        seed=seed,
    )
    timeline.check_length(seconds)
    to_stdout = str(output) == "-"
    if not to_stdout:
        check_output_path(output)  # before any work
    pipe = load_pipeline(checkpoint or "t2v_causal", precision=precision)
    bar = tqdm(
        total=cfg.frames, unit="frame", desc="streaming" if streaming else "generating", file=sys.stderr
    )
    start = time.perf_counter()
    chunks = stream(pipe, timeline, cfg)
    if streaming or to_stdout:
        with StreamWriter("-" if to_stdout else output, fps, size, size) as out:
            try:
                for frames in chunks:
                    out.write(frames)
                    bar.update(frames.shape[1])
                    bar.set_postfix(fps=f"{bar.n / (time.perf_counter() - start):.1f}")
            except KeyboardInterrupt:
                bar.close()
                click.echo(f"interrupted: {out.frames} frames written", err=True)
                if not to_stdout:
                    click.echo(str(output))
                raise SystemExit(130) from None
        bar.close()
        if not to_stdout:
            click.echo(str(output))
        return
    made = []
    for frames in chunks:
        made.append(frames)
        bar.update(frames.shape[1])
        bar.set_postfix(fps=f"{bar.n / (time.perf_counter() - start):.1f}")
    bar.close()
    click.echo(str(write_video(output, torch.cat(made, dim=1), fps=fps)))
