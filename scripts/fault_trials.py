"""Fault trials: what a user's mistakes, kills and races do to filmstrip, counted.

    python scripts/fault_trials.py --trials 20 --out runs/faults      # about 30 min on 2 cores

1. Bad inputs: each command must exit 1 with one line and no traceback.
2. Reproducibility: two from-scratch runs of one command must give identical weights.
3. Kills: a tiny training run is stopped by SIGKILL, SIGTERM or SIGINT at a random moment
   after its first checkpoint, then run again to the end (resuming); its model must equal an
   uninterrupted run's bit for bit.
4. Races: two processes write one output path at once; the file must be one whole video.

Prints one line per trial kind: how many of how many passed.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

FILMSTRIP = [sys.executable, "-m", "filmstrip"]
TRAIN = ["vae", "train", "--preset", "tiny", "--data", "shapes", "--frames", "5", "--size", "16",
         "--batch-size", "2", "--steps", "40", "--ckpt-every", "3", "--sample-every", "0", "--workers", "0"]  # fmt: skip


def run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(FILMSTRIP + args, capture_output=True, text=True, **kw)


def same_model(a: Path, b: Path) -> bool:
    x, y = (
        load_file(str(a / "model" / "model.safetensors")),
        load_file(str(b / "model" / "model.safetensors")),
    )
    return x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)


def bad_inputs(out: Path) -> tuple[int, int, list[str]]:
    (out / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video")
    (out / "cfg").mkdir(exist_ok=True)
    (out / "cfg" / "config.json").write_text('{"kind": "vae", "config": {"channels": "wide"}}')
    (out / "bad.toml").write_text("[train]\nsteps = 'many'\n")
    cases = [
        ["generate", "a red circle", "-o", str(out / "x.mp4"), "--cfg", "nan"],
        ["generate", "a red circle", "-o", str(out / "x.mp4"), "--lag", "nan"],
        ["generate", "a red circle", "-o", str(out / "x.avi")],
        ["generate", "a red circle", "-o", str(out / "corrupt.mp4" / "x.mp4")],
        ["generate", "", "-o", str(out / "x.mp4")],
        ["generate", "a red circle", "-o", str(out / "x.mp4"), "--size", "4096"],
        ["generate", "a red circle", "-o", str(out / "x.mp4"), "--frames", "100001"],
        ["generate", "a red circle", "-o", str(out / "x.mp4"), "--seed", str(2**70)],
        ["generate", "a red circle", "-o", str(out / "x.mp4"), "-c", str(out / "nowhere")],
        ["generate", "a red circle", "-o", str(out / "x.mp4"), "-c", str(out / "cfg")],
        ["vae", "reconstruct", str(out / "corrupt.mp4"), "-o", str(out / "r.mp4")],
        ["vae", "reconstruct", str(out / "missing.mp4"), "-o", str(out / "r.mp4")],
        ["vae", "decode", str(out / "corrupt.mp4"), "-o", str(out / "r.mp4")],
        ["vae", "eval", "-c", str(out / "cfg")],
        ["vae", "train", "--run", str(out / "t"), "--steps", "-5"],
        ["vae", "train", "--run", str(out / "t"), "--config", str(out / "bad.toml")],
        ["train", "t2v", "--run", str(out / "t"), "--clips", "0"],
        ["train", "t2v", "--run", str(out / "t"), "--set", "dit.depth=deep"],
        ["train", "t2v", "--run", str(out / "t"), "--set", "dit.unknown=1"],
        ["data", "preview", "folder:" + str(out / "nowhere"), "-o", str(out / "p.mp4")],
        ["data", "probe", str(out / "corrupt.mp4")],
    ]
    ok, failures = 0, []
    for args in cases:
        r = run(args)
        lines = [line for line in (r.stdout + r.stderr).splitlines() if line.strip()]
        if r.returncode in (1, 2) and "Traceback" not in r.stderr and len(lines) <= 3:
            ok += 1
        else:
            failures.append(f"{' '.join(args)} -> {r.returncode}: {(r.stdout + r.stderr)[-300:]}")
    return ok, len(cases), failures


def first_checkpoint_then(proc: subprocess.Popen, run_dir: Path, timeout: float = 300.0) -> float:
    """Wait until the run has written its first checkpoint (or ended); seconds waited."""
    start = time.perf_counter()
    while proc.poll() is None and time.perf_counter() - start < timeout:
        if any((run_dir / "checkpoints").glob("step_*/state.json")):
            break
        time.sleep(0.05)
    return time.perf_counter() - start


def kill_trial(out: Path, reference: Path, sig: int, k: int, delay: float) -> tuple[bool, bool]:
    """Stop a run `delay` seconds after its first checkpoint, run it again to the end, compare.
    Returns (identical, whether the second run resumed from a checkpoint of the first)."""
    run_dir = out / f"kill_{signal.Signals(sig).name}_{k}"
    shutil.rmtree(run_dir, ignore_errors=True)
    proc = subprocess.Popen(
        FILMSTRIP + [*TRAIN, "--run", str(run_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    first_checkpoint_then(proc, run_dir)
    time.sleep(delay)
    stopped_early = proc.poll() is None
    if stopped_early:
        proc.send_signal(sig)
    proc.wait()
    final = run([*TRAIN, "--run", str(run_dir)])
    return final.returncode == 0 and same_model(run_dir, reference), stopped_early


def race_trial(out: Path, k: int) -> bool:
    target = out / f"race_{k}.mp4"
    code = (
        "import sys, numpy as np; from filmstrip.io import write_video; "
        "write_video(sys.argv[1], np.full((3, 12, 64, 64), int(sys.argv[2]), np.uint8), fps=8)"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(target), str(v)]) for v in (30, 220)]
    codes = [p.wait() for p in procs]
    from filmstrip.io import probe, read_video

    try:
        video, _ = read_video(target)
        level = int(video.float().mean())
        return (
            all(c == 0 for c in codes)
            and probe(target).num_frames == 12
            and level in range(25, 36)
            or level in range(214, 226)
        )
    except Exception:  # noqa: BLE001 (a broken file is what this trial counts)
        return False


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=20, help="Trials per kind of kill and of race.")
    parser.add_argument("--out", type=Path, default=Path("runs/faults"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out, rng = args.out, random.Random(args.seed)
    out.mkdir(parents=True, exist_ok=True)

    ok, n, failures = bad_inputs(out)
    print(f"bad inputs answered with one sentence: {ok} / {n}", flush=True)
    for f in failures:
        print("  " + f)

    reference = out / "reference"
    pair = [reference, out / "reference_again"]
    training = []  # seconds from the first checkpoint to the end of a run
    for p in pair:
        shutil.rmtree(p, ignore_errors=True)
        proc = subprocess.Popen(
            FILMSTRIP + [*TRAIN, "--run", str(p)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        first_checkpoint_then(proc, p)
        start = time.perf_counter()
        assert proc.wait() == 0
        training.append(time.perf_counter() - start)
    print(f"from-scratch runs bit-identical: {int(same_model(*pair))} / 1", flush=True)

    for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
        # A random moment between the first checkpoint and the end of the run.
        delays = [rng.uniform(0.0, 0.9) * min(training) for _ in range(args.trials)]
        results = [kill_trial(out, reference, sig, k, d) for k, d in enumerate(delays)]
        passed, early = sum(r[0] for r in results), sum(r[1] for r in results)
        print(
            f"{signal.Signals(sig).name} at a random time after the first checkpoint, then run again, "
            f"bit-identical: {passed} / {args.trials} ({early} stopped before the end)",
            flush=True,
        )

    passed = sum(race_trial(out, k) for k in range(args.trials))
    print(f"two writers of one path leave one whole video: {passed} / {args.trials}", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
