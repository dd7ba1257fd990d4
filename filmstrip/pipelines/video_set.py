"""A folder of generated videos: one or more per prompt, for `eval fvd` against real clips, or
as a captioned dataset (`folder:OUT` reads it as it is).

    write_video_set(pipe, ["a red circle moves right", "a blue square moves up"], GenerateConfig(), "out/", samples=4)

OUT holds `00000.mp4`, `00001.mp4`, ... (video k is sample k % samples of prompt k // samples,
drawn from seed + k, so the set does not depend on the batch size), `captions.jsonl` (each
file's prompt, written first, so a partial set reads as a dataset too) and `settings.json`.
Videos are written whole or not at all; a re-run makes only the missing ones, and refuses a
folder made with other prompts or settings, which would mix two sets in one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

from tqdm import tqdm

from filmstrip.atomic import write_text_atomic
from filmstrip.errors import InputError
from filmstrip.io import write_video
from filmstrip.pipelines.generate import GenerateConfig, Pipeline, check_request, generate


def read_prompt_file(path: str | Path) -> list[str]:
    """One prompt per line; blank lines and lines starting with '#' are skipped."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such prompt file (one prompt per line)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file (one prompt per line, UTF-8)") from None
    prompts = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise InputError(f"{path}: holds no prompt (one per line; '#' starts a comment)")
    return prompts


def write_video_set(
    pipe: Pipeline,
    prompts: Sequence[str],
    cfg: GenerateConfig,
    out: str | Path,
    samples: int = 1,
    batch: int = 8,
    fps: float = 8.0,
    negative: str = "",
    model: str = "",
    progress: bool = True,
) -> Path:
    """Write samples x len(prompts) videos into `out` (see the module docstring); returns it.
    model: what the pipeline was loaded from, recorded with the settings (a re-run with another
    model is refused)."""
    if samples < 1 or batch < 1:
        raise InputError(f"samples and batch must be at least 1, got {samples} and {batch}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file; give a folder for the videos")
    if out.suffix.lower() in (".mp4", ".webm", ".gif", ".mkv", ".mov", ".avi"):
        raise InputError(
            f"{out}: a set is a folder of videos; give a folder name (one video: `filmstrip generate`)"
        )
    check_request(pipe, prompts, cfg, batch)  # every prompt before the first video; one batch in memory
    files = [f"{k:05d}.mp4" for k in range(len(prompts) * samples)]
    captions = [prompts[k // samples] for k in range(len(files))]
    settings = {"prompts": list(prompts), "samples": samples, "fps": fps, "negative": negative,
                "generate": asdict(cfg), "model": model}  # fmt: skip
    _claim(out, json.loads(json.dumps(settings)))
    write_text_atomic(out / "captions.jsonl", "".join(
        json.dumps({"file": f, "caption": c, "seed": cfg.seed + k}) + "\n" for k, (f, c) in enumerate(zip(files, captions, strict=True))
    ))  # fmt: skip
    missing = [k for k, f in enumerate(files) if not (out / f).exists()]
    bar = tqdm(total=len(files), initial=len(files) - len(missing), unit="video", disable=not progress)
    with bar:
        for start, stop in _runs(missing, batch):
            # Row r of a batch draws its noise from seed + r (initial_noise): a batch starting at
            # video k gives video k + r the seed it would have alone.
            videos = generate(pipe, captions[start:stop], replace(cfg, seed=cfg.seed + start), negative)
            for k, video in zip(range(start, stop), videos, strict=True):
                write_video(out / files[k], video, fps=fps)
            bar.update(stop - start)
    return out


def _claim(out: Path, settings: dict) -> None:
    """Make `out` this set's, or check that it already is."""
    path = out / "settings.json"
    if path.exists():
        before = json.loads(path.read_text())
        if before != settings:
            changed = sorted(k for k in settings if before.get(k) != settings[k])
            raise InputError(
                f"{out}: holds a set made with other {', '.join(changed)}; give another folder, or the "
                "same settings to finish it"
            )
        return
    if out.is_dir() and any(out.iterdir()):
        raise InputError(f"{out}: is not empty and holds no video set; give an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(settings, indent=2, sort_keys=True) + "\n")


def _runs(indices: list[int], batch: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of consecutive `indices`, each at most `batch` long."""
    runs: list[tuple[int, int]] = []
    for k in indices:
        if runs and runs[-1][1] == k and k - runs[-1][0] < batch:
            runs[-1] = (runs[-1][0], k + 1)
        else:
            runs.append((k, k + 1))
    return runs
