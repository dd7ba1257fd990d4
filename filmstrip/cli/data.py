"""`filmstrip data`: look at the built-in datasets and your own videos."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def data() -> None:
    """Inspect the built-in datasets and your own videos."""


@data.command()
@click.argument("name")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the grid: .mp4, .webm or .gif.",
)
@click.option(
    "-n", "--num", default=8, show_default=True, type=click.IntRange(min=1), help="Clips in the grid."
)
@click.option("--columns", default=4, show_default=True, type=click.IntRange(min=1))
@click.option("--frames", default=16, show_default=True, help="Frames per clip.")
@click.option(
    "--size", default=64, show_default=True, help="Clip height and width (bucket area for folders)."
)
@click.option(
    "--fps",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Sampling rate [default: 8, or the source rate for folders].",
)
@click.option("--split", type=click.Choice(["train", "test"]), default="train", show_default=True)
@click.option("--seed", default=0, show_default=True)
def preview(
    name: str,
    output: Path,
    num: int,
    columns: int,
    frames: int,
    size: int,
    fps: float | None,
    split: str,
    seed: int,
) -> None:
    """Render a captioned grid of clips from NAME: shapes, digits or folder:PATH."""
    from filmstrip.data import build_dataset
    from filmstrip.io import write_video
    from filmstrip.viz import video_grid

    dataset = build_dataset(name, num_frames=frames, height=size, width=size, fps=fps, seed=seed, split=split)
    items = [dataset[i] for i in range(min(num, len(dataset)))]
    grid = video_grid(
        [it["video"] for it in items], [it["caption"] or "(no caption)" for it in items], columns
    )
    # Play at the sampling rate; a folder sampled at its own rate plays at its first video's.
    rate = fps or getattr(dataset.cfg, "fps", None) or dataset.items[0].info.fps
    path = write_video(output, grid, fps=rate)
    click.echo(str(path))


@data.command("probe")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def probe_cmd(paths: tuple[Path, ...]) -> None:
    """Print size, frame count, fps and duration of each video."""
    from filmstrip.io import VideoReadError, probe

    failed = 0
    for path in paths:  # every file gets its line; a bad one does not hide the rest
        try:
            info = probe(path)
        except VideoReadError as e:
            failed += 1
            click.echo(f"{path}: UNREADABLE: {str(e).removeprefix(f'{path}: ')}")
            continue
        vfr = ", variable frame rate" if info.variable_frame_rate else ""
        bad = ", TRUNCATED" if info.truncated else ""
        bad += f", rotated {info.rotation} degrees for display" if info.rotation else ""
        click.echo(
            f"{path}: {info.width}x{info.height}, {info.num_frames} frames, {info.fps:.3f} fps, "
            f"{info.duration:.2f} s, {info.codec}/{info.pix_fmt}{vfr}{bad}"
        )
    if failed:
        raise click.ClickException(f"{failed} of {len(paths)} files could not be read")


@data.command("cuts")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--ratio", default=3.0, show_default=True, help="A cut's change over its neighbours' mean.")
@click.option(
    "--min-score", default=5.0, show_default=True, help="Change (0-255) below which nothing is a cut."
)
@click.option("--min-gap", default=8, show_default=True, help="Frames: the shortest shot.")
def cuts_cmd(path: Path, ratio: float, min_score: float, min_gap: int) -> None:
    """Print the times (seconds) where the video cuts to a new shot, one per line."""
    from filmstrip.data.cuts import CutConfig, detect_cuts

    times, indices, scores = detect_cuts(path, CutConfig(ratio=ratio, min_score=min_score, min_gap=min_gap))
    for t, i in zip(times, indices, strict=True):
        click.echo(f"{t:.3f}  (frame {i}, change {scores[i]:.1f})")
    click.echo(f"{len(times)} cuts in {len(scores)} frames")


@data.command("flow")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--size",
    default=256,
    show_default=True,
    type=click.IntRange(min=8),
    help="Short side the flow is computed at.",
)
@click.option(
    "--max-px",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Speed (px per frame) shown at full brightness [default: 4% of the short side].",
)
def flow_cmd(path: Path, output: Path, size: int, max_px: float | None) -> None:
    """Write the video beside its optical flow (DIS) as a colour wheel: hue is the direction of
    motion, brightness the speed."""
    import numpy as np
    from tqdm import tqdm

    from filmstrip.data.flow import flow, flow_to_rgb, grey
    from filmstrip.io import check_output_path, iter_frames, probe, write_video

    output = check_output_path(output)
    info = probe(path)
    rows, previous = [], None
    for _, frame in tqdm(iter_frames(path, size=size), total=info.num_frames, unit="frame"):
        g = grey(frame)
        f = np.zeros((*g.shape, 2), np.float32) if previous is None else flow(previous, g)
        previous = g
        colour = flow_to_rgb(f, max_px or 0.04 * min(g.shape))
        rows.append(np.concatenate([frame, colour], axis=1))
    click.echo(str(write_video(output, np.stack(rows).transpose(3, 0, 1, 2), fps=info.fps)))


@data.command("prepare")
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--min-seconds", default=1.0, show_default=True, help="Shorter pieces are dropped.")
@click.option("--max-seconds", default=10.0, show_default=True, help="Longer shots are split.")
@click.option(
    "--min-motion", default=0.003, show_default=True, help="Short sides per second; below is too static."
)
@click.option(
    "--size",
    default=256,
    show_default=True,
    type=click.IntRange(min=8),
    help="Clips are written at about size x size pixels.",
)
@click.option(
    "--tolerance",
    default=0.2,
    show_default=True,
    help="Most of a frame a bucket may crop away (wide footage).",
)
def prepare_cmd(
    src: Path,
    out: Path,
    min_seconds: float,
    max_seconds: float,
    min_motion: float,
    size: int,
    tolerance: float,
) -> None:
    """Turn a folder of videos into training clips: split at scene cuts, measure, filter,
    resize to aspect buckets, carry captions, write OUT/clips and OUT/manifest.jsonl.
    Re-running skips finished videos."""
    from filmstrip.data.prepare import PrepareConfig, prepare

    cfg = PrepareConfig(
        min_seconds=min_seconds,
        max_seconds=max_seconds,
        min_motion=min_motion,
        area=size * size,
        tolerance=tolerance,
    )
    for line in prepare(src, out, cfg).lines():
        click.echo(line)
    click.echo(f"train on it with --data folder:{out / 'clips'}")


@data.command("export")
@click.argument("name", type=click.Choice(["shapes"]), metavar="NAME")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--clips", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--frames", default=17, show_default=True, type=click.IntRange(min=2))
@click.option("--size", default=64, show_default=True, type=click.IntRange(min=16))
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=8.0, show_default=True)
@click.option(
    "--shapes",
    "shape_names",
    default="circle,square,triangle",
    show_default=True,
    help="Shapes to draw, comma-separated (star is one the bundled model never saw).",
)
@click.option("--sizes", default="small,large", show_default=True, help="Sizes to draw, comma-separated.")
@click.option("--require", default=None, help="Keep only scenes with at least one object of this shape.")
@click.option(
    "--focus",
    default=None,
    help="Also write each clip's focus mask (clip.mask.mp4) of the objects of this shape, which "
    "training can weigh more (task.focus_weight).",
)
@click.option("--seed", default=0, show_default=True)
def export_cmd(name, out, clips, frames, size, fps, shape_names, sizes, require, focus, seed) -> None:
    """Write NAME's clips to OUT as a captioned folder (clip.mp4, clip.txt, and the ground
    truth as clip.json), the layout `folder:OUT` reads: e.g. a small set that teaches a LoRA."""
    from filmstrip.data.export import export_shapes
    from filmstrip.data.shapes import ShapesConfig

    cfg = ShapesConfig(
        num_frames=frames,
        height=size,
        width=size,
        fps=fps,
        seed=seed,
        shapes=tuple(s.strip() for s in shape_names.split(",")),
        sizes=tuple(s.strip() for s in sizes.split(",")),
    )
    written = export_shapes(cfg, out, clips, require, focus)
    click.echo(f"{out}: {written} clips")
