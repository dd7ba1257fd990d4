"""One report per text-to-video model trained on `shapes`: every measurement filmstrip has,
on one fixed set of prompts, beside the same measurements of real clips.

Three sets of clips are scored the same way against a reference set R, the real clips of the
suite's scenes (the prompts' own scenes, `prompt_suite.suite_scenes` draw 0):

* **real**: an independent draw of real clips (draw 1): the floor every distance has;
* **VAE round trip**: that draw through the model's VAE: the ceiling its latent space allows;
* **model**: one video per prompt of R, from fixed seeds.

For each set: FVD (I3D, the first 16 frames) and FID (Inception, frames `fid_frames` of each
clip) against R, the temporal dimensions (temporal.py, means over clips), the physics probe
(physics.py) and frame-to-frame ST-LPIPS; for the round trip also PSNR and paired LPIPS; for
the model also prompt adherence and sampling speed.

Deterministic: fixed seeds and counts, and every network runs in float32. What a set's pixels
yield is cached by their SHA-256 (`~/.cache/filmstrip/report/`), so the real sets are scored
once per machine, and a rerun that regenerates identical videos is found identical.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from tqdm import tqdm

from filmstrip.checkpoint import save_tensors_atomic
from filmstrip.data.shapes import render
from filmstrip.errors import InputError
from filmstrip.eval.fid import fid, frames_of, inception_features, load_inception
from filmstrip.eval.fvd import fvd, i3d_features
from filmstrip.eval.i3d import MIN_FRAMES, cache_dir, load_i3d
from filmstrip.eval.lpips import load_lpips, lpips_video
from filmstrip.eval.metrics import psnr
from filmstrip.eval.physics import PARTS, probe
from filmstrip.eval.prompt_suite import SuiteConfig, run_suite, scene_config, suite_scenes
from filmstrip.eval.reconstruction import reconstruct
from filmstrip.eval.temporal import feature_consistency, temporal_scores
from filmstrip.io.layout import from_uint8, to_uint8
from filmstrip.pipelines.generate import GenerateConfig, Pipeline

ANALYSIS_VERSION = 1  # bump when what a set's analysis holds changes: older cache files are not read
TEMPORAL = (
    "motion",
    "dynamic",
    "motion_smoothness",
    "warping_error",
    "flicker",
    "background_consistency",
    "step_lpips",
)


@dataclass(frozen=True)
class ScoreConfig:
    """What scoring a set of clips of `frames` frames reads."""

    frames: int
    fvd_frames: int = 16  # from the start of each clip (fewer if the clips are shorter)
    # Frames of each clip FID and subject consistency see; () = the first, middle and last.
    fid_frames: tuple[int, ...] = ()
    batch: int = 8

    def __post_init__(self):
        if self.frames < MIN_FRAMES:
            raise InputError(f"FVD's I3D needs clips of at least {MIN_FRAMES} frames, got {self.frames}")
        if self.fid_frames and not all(0 <= f < self.frames for f in self.fid_frames):
            raise InputError(f"fid_frames {self.fid_frames} must lie in the {self.frames} frames of a clip")
        object.__setattr__(self, "fvd_frames", min(self.fvd_frames, self.frames))
        if not self.fid_frames:
            object.__setattr__(self, "fid_frames", (0, self.frames // 2, self.frames - 1))


@dataclass(frozen=True)
class ReportConfig:
    samples: int = 64  # prompts (half seen in training, half held out), one video each
    frames: int = 17
    size: int = 64
    steps: int = 20
    text_scale: float = 4.0
    seed: int = 0
    fid_frames: tuple[int, ...] = ()  # see ScoreConfig
    examples: int = 8  # clips shown on the page
    batch: int = 8
    suite: SuiteConfig = field(default_factory=SuiteConfig)

    def __post_init__(self):
        if self.samples < 4 or self.samples % 2:
            raise InputError(f"a report needs an even number of at least 4 samples, got {self.samples}")
        object.__setattr__(self, "fid_frames", self.scoring.fid_frames)

    @property
    def scoring(self) -> ScoreConfig:
        return ScoreConfig(self.frames, fid_frames=self.fid_frames, batch=self.batch)


@dataclass
class Networks:
    """The scoring networks, loaded once."""

    i3d: torch.nn.Module
    inception: torch.nn.Module
    lpips: torch.nn.Module

    @classmethod
    def load(cls, device: torch.device | str = "cpu") -> Networks:
        return cls(load_i3d(device), load_inception(device), load_lpips("alex", device))


def analyse(
    clips_u8: torch.Tensor,
    nets: Networks,
    cfg: ScoreConfig,
    cache: Path | None,
    physics: bool = True,
    progress: bool = False,
    name: str = "clips",
) -> dict[str, torch.Tensor]:
    """Everything measured on a set of clips (N, 3, T, H, W) uint8 on its own: I3D and
    Inception features, and per clip the temporal dimensions, subject consistency and the
    physics probe's score and parts (`physics`: for `shapes` clips only). Cached by the pixels' hash."""
    key = hashlib.sha256(
        json.dumps(
            [ANALYSIS_VERSION, list(clips_u8.shape), cfg.fvd_frames, list(cfg.fid_frames), physics]
        ).encode()
        + clips_u8.contiguous().numpy().tobytes()
    ).hexdigest()[:20]
    path = cache / f"set-{key}.safetensors" if cache else None
    if path and path.exists():
        return load_file(str(path))
    video = from_uint8(clips_u8)
    batches = [video[i : i + cfg.batch] for i in range(0, len(video), cfg.batch)]
    if progress:
        tqdm.write(f"scoring {name}: I3D, Inception, then each clip's temporal dimensions")
    i3d = i3d_features(nets.i3d, batches, cfg.fvd_frames, progress=progress, total=len(video))
    chosen = video[:, :, list(cfg.fid_frames)]
    inception = inception_features(
        nets.inception,
        [frames_of(chosen[i : i + cfg.batch]) for i in range(0, len(video), cfg.batch)],
        progress=progress,
        total=len(video) * len(cfg.fid_frames),
    )
    per_frame = inception.reshape(len(video), len(cfg.fid_frames), -1)
    rows, laws = [], []
    for k in tqdm(range(len(video)), unit="clip", disable=not progress):
        frames = clips_u8[k].permute(1, 2, 3, 0).numpy()
        s = temporal_scores(frames, lpips=nets.lpips).as_dict()
        rows.append([float(s[dimension]) for dimension in TEMPORAL] + [feature_consistency(per_frame[k])])
        if physics:
            p = probe(frames)
            laws.append([p.score, float(p.passed)] + [p.parts[part] for part in PARTS])
    out = {"i3d": i3d, "inception": inception, "temporal": torch.tensor(rows, dtype=torch.float64)}
    if physics:
        out["physics"] = torch.tensor(laws, dtype=torch.float64)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_tensors_atomic(path, out)
    return out


def summarise_set(a: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> dict[str, float]:
    """A set's analysis as numbers: distances to the reference's, means of the rest."""
    temporal = a["temporal"].mean(0).tolist()
    out = {"fvd": fvd(a["i3d"], reference["i3d"]), "fid": fid(a["inception"], reference["inception"])}
    out |= dict(zip([*TEMPORAL, "subject_consistency"], temporal, strict=True))
    if "physics" not in a:
        return out
    phys = a["physics"]
    out["physics"] = float(phys[:, 0].mean())
    out["physics_passed"] = float(phys[:, 1].mean())
    out |= {f"physics_{p}": float((phys[:, 2 + i] == 1).double().mean()) for i, p in enumerate(PARTS)}
    return out


def build_report(pipe: Pipeline, cfg: ReportConfig | None = None, nets: Networks | None = None,
                 cache: Path | None = None, progress: bool = True, model_name: str = "") -> tuple[dict, dict]:  # fmt: skip
    """(numbers, clips): the report's numbers (JSON-ready) and the clips it shows."""
    cfg = cfg or ReportConfig()
    cache = cache if cache is not None else cache_dir() / "report"
    start = time.perf_counter()
    times = {}
    nets = nets or Networks.load()
    suite = replace(cfg.suite, num_prompts=cfg.samples, frames=cfg.frames, size=cfg.size)
    shapes = scene_config(suite)

    def real(draw: int) -> torch.Tensor:
        return torch.stack(
            [torch.from_numpy(render(s, shapes)).permute(3, 0, 1, 2) for _, s in suite_scenes(suite, draw)]
        )

    reference, other = real(0), real(1)
    gen = GenerateConfig(frames=cfg.frames, height=cfg.size, width=cfg.size, steps=cfg.steps, text_scale=cfg.text_scale, seed=cfg.seed)  # fmt: skip
    t0 = time.perf_counter()
    adherence = run_suite(pipe, suite, gen, batch_size=cfg.batch, progress=progress, keep_videos=True)
    times["generate_s_per_clip"] = (time.perf_counter() - t0) / cfg.samples
    generated = adherence.pop("videos")
    with torch.no_grad():
        round_trip = torch.cat([to_uint8(reconstruct(pipe.vae, from_uint8(other[i : i + cfg.batch]))) for i in range(0, len(other), cfg.batch)])  # fmt: skip
    t0 = time.perf_counter()
    analyses = {}
    for name, clips in (("reference", reference), ("real", other), ("vae", round_trip), ("model", generated)):
        analyses[name] = analyse(clips, nets, cfg.scoring, cache, progress=progress, name=name)
    times["score_s"] = time.perf_counter() - t0
    rows = {name: summarise_set(analyses[name], analyses["reference"]) for name in ("real", "vae", "model")}
    rows["vae"]["psnr"] = float(psnr(from_uint8(round_trip), from_uint8(other)).mean())
    rows["vae"]["lpips"] = float(lpips_video(nets.lpips, from_uint8(round_trip), from_uint8(other)).mean())
    times["total_s"] = time.perf_counter() - start
    numbers = {
        "model": model_name,
        "parameters": sum(p.numel() for p in pipe.dit.parameters()),
        "config": asdict(cfg) | {"fvd_frames": cfg.scoring.fvd_frames},
        "rows": rows,
        "adherence": {k: adherence[k] for k in ("seen", "held_out", "held_out_object", "by_objects")},
        "times": times,
    }
    prompts = [r["prompt"] for r in adherence["prompts"]]
    show = np.linspace(0, cfg.samples - 1, cfg.examples).round().astype(int).tolist()
    clips = {"prompts": [prompts[i] for i in show], "model": generated[show], "real": reference[show]}
    return numbers, clips
