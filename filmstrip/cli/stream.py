"""`filmstrip generate --seconds N [--stream] [--prompt "0s: ..." ...]`: a long video from the
causal model, written as it is made."""

from __future__ import annotations

import sys
from pathlib import Path

import click


def generate_long(
    entries: list[str],
    output: Path,
    checkpoint: Path | None,
    seconds: float,
    fps: float,
    size: tuple[int, int] | None,
    steps: int | None,
    text_scale: float,
    seed: int,
    window: int,
    sink: int,
    context_noise: float,
    streaming: bool,
    precision: str,
    device: str,
) -> None:
    """Roll the causal model out for `seconds`; with `streaming` (or output "-") every chunk
    is appended to a fragmented MP4 as it is made, so the file plays while it grows and
    Ctrl-C leaves a playable file of what was made."""
    import torch
    from tqdm import tqdm

    from filmstrip.io import check_output_path, write_video
    from filmstrip.io.memory import check_fits
    from filmstrip.io.stream_writer import StreamWriter, check_stream_path
    from filmstrip.models.kv_cache import CacheConfig
    from filmstrip.pipelines.generate import asked_shape, load_pipeline
    from filmstrip.pipelines.stream import StreamConfig, check_streamable, stream
    from filmstrip.pipelines.timeline import parse_timeline

    timeline = parse_timeline(entries)
    timeline.check_length(seconds)
    to_stdout = str(output) == "-"
    if not to_stdout:  # before any work
        (check_stream_path if streaming else check_output_path)(output)
    pipe = load_pipeline(checkpoint or "t2v_causal", device=device, precision=precision)
    check_streamable(pipe)  # before the progress bar
    _, height, width = asked_shape(pipe, None, size)
    cfg = StreamConfig(
        seconds=seconds,
        fps=fps,
        height=height,
        width=width,
        steps=StreamConfig.steps if steps is None else steps,
        text_scale=text_scale,
        cache=CacheConfig(window=window, sink=sink),
        context_noise=context_noise,
        seed=seed,
    )
    if not (streaming or to_stdout):  # the whole video is held, as float pixels, then joined
        check_fits(2 * 4 * 3 * cfg.frames * height * width, f"holding {cfg.frames} frames at {width}x{height}",
                   "write them as they are made with --stream")  # fmt: skip
    bar = tqdm(
        total=cfg.frames, unit="frame", desc="streaming" if streaming else "generating", file=sys.stderr
    )  # its rate is the live frames/s

    def counted(chunks):
        for frames in chunks:
            bar.update(frames.shape[1])
            yield frames

    with bar:
        chunks = counted(stream(pipe, timeline, cfg))
        if not (streaming or to_stdout):
            click.echo(str(write_video(output, torch.cat(list(chunks), dim=1), fps=fps)))
            return
        with StreamWriter("-" if to_stdout else output, fps, height, width) as out:
            try:
                for frames in chunks:
                    out.write(frames)
            except KeyboardInterrupt:
                bar.close()
                click.echo(f"interrupted: {out.frames} frames written", err=True)
                if not to_stdout:
                    click.echo(str(output))
                raise SystemExit(130) from None
    if not to_stdout:
        click.echo(str(output))
