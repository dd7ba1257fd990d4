"""How to store training clips: raw arrays against H.264, VP9 and AV1, in disk per clip,
decode frames/s and fidelity (PSNR against the raw frames).

The content is camera-like (a panning texture, moving discs, per-frame grain; see
bench_io.py), or any video given with --video. Decoding is timed in interleaved rounds within
this run and reported also as a ratio to loading the raw .npy, since these machines are noisy.

    python benchmarks/bench_storage.py [--frames 64] [--size 256] [--video PATH] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch
from bench_io import camera_frames
from timing import interleaved

from filmstrip.eval.metrics import psnr
from filmstrip.io import read_video, write_video


def write_av1(path: Path, frames_thw3: np.ndarray, fps: float, crf: int = 35, preset: int = 8) -> Path:
    """AV1 (SVT-AV1) in Matroska; filmstrip's writer does not offer AV1, so PyAV directly."""
    os.environ.setdefault("SVT_LOG", "1")  # errors only: SVT-AV1 prints its whole config otherwise
    with av.open(str(path), "w") as container:
        stream = container.add_stream(
            "libsvtav1", rate=round(fps), options={"crf": str(crf), "preset": str(preset)}
        )
        stream.height, stream.width = frames_thw3.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in frames_thw3:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument(
        "--video", type=Path, default=None, help="Use this clip's first --frames frames instead."
    )
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.video:
        video, _ = read_video(args.video, num_frames=args.frames, size=args.size)
        frames = video.permute(1, 2, 3, 0).numpy()
        frames = frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2].copy()
    else:
        frames = camera_frames(args.frames, args.size, args.size)
    fps = 30.0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        writers = {
            "raw .npy": lambda p: np.save(p, frames),
            "H.264 crf 18": lambda p: write_video(p, frames.transpose(3, 0, 1, 2), fps),
            "H.264 crf 28": lambda p: write_video(p, frames.transpose(3, 0, 1, 2), fps, quality=28),
            "VP9 crf 30": lambda p: write_video(p, frames.transpose(3, 0, 1, 2), fps),
            "AV1 crf 35": lambda p: write_av1(p, frames, fps),
        }
        suffix = {"raw .npy": ".npy", "VP9 crf 30": ".webm", "AV1 crf 35": ".mkv"}
        paths, encode_s = {}, {}
        for name, write in writers.items():
            path = tmp / (name.replace(" ", "_").replace(".", "") + suffix.get(name, ".mp4"))
            start = time.perf_counter()
            write(path)
            encode_s[name], paths[name] = time.perf_counter() - start, path

        def load(name: str) -> np.ndarray:
            if name == "raw .npy":
                return np.load(paths[name])
            return read_video(paths[name])[0].permute(1, 2, 3, 0).numpy()

        times = interleaved({name: (lambda n=name: load(n)) for name in writers}, rounds=args.rounds)
        raw = torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
        t, h, w, _ = frames.shape
        print(f"{t} frames at {w}x{h} ({'from ' + str(args.video) if args.video else 'camera-like content'})")
        print(
            f"  {'format':<14} {'KB/clip':>9} {'vs raw':>8} {'encode s':>9} {'decode fr/s':>12} {'vs raw':>7} {'PSNR dB':>8}"
        )
        for name in writers:
            size = paths[name].stat().st_size
            decoded = torch.from_numpy(load(name)).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
            quality = psnr(decoded, raw).item()
            print(
                f"  {name:<14} {size / 1024:9.1f} {size / paths['raw .npy'].stat().st_size:7.3f}x "
                f"{encode_s[name]:9.2f} {t / times[name]:12.0f} {times['raw .npy'] / times[name]:6.3f}x "
                f"{'exact' if quality == float('inf') else f'{quality:.2f}':>8}"
            )


if __name__ == "__main__":
    main()
