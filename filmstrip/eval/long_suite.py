"""The long-video strategies side by side: a minute per prompt, scored window by window.

Each strategy is a way to make a long video from one of the two bundled models:

| name | model | how |
| --- | --- | --- |
| naive | causal | every past frame kept in the KV cache, clean |
| window | causal | rolling window of 4 latent frames, no sink |
| sink | causal | window of 3 + 1 attention-sink frame, positions reindexed |
| sink-continue | causal | as sink, positions continued (the sink drifts far into the past); the default |
| noisy-context | causal | as sink, made frames enter the cache at noise level 0.1 |
| pyramid | causal | as sink with chunks of 2 latent frames on a diffusion-forcing pyramid |
| continue-noisy | causal | as sink-continue, made frames enter the cache at noise level 0.1 |
| continue-pyramid | causal | as sink-continue with chunks of 2 latent frames on a pyramid (window 2) |
| sliding | bidirectional | windows of 5 latent frames every 2, blended in latent space |
| sliding-freenoise | bidirectional | as sliding, with FreeNoise's noise re-use |
| hierarchical | bidirectional | keyframes every 2 s (chained image to video), then each segment between two keyframes |

`run_long_suite` makes every (strategy, prompt) video and scores its first and last `span`
seconds with eval/drift.py; `switch_lag` measures how soon a timeline's new prompt shows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from tqdm import tqdm

from filmstrip.config import require
from filmstrip.errors import InputError
from filmstrip.eval.adherence import detect
from filmstrip.eval.drift import CHECKS, DriftConfig, bounce_directions, first_and_last, window_scores
from filmstrip.models.kv_cache import CacheConfig
from filmstrip.pipelines.denoise import Pipeline
from filmstrip.pipelines.longform import HierarchicalConfig, SlidingConfig, hierarchical, sliding_windows
from filmstrip.pipelines.stream import StreamConfig, stream
from filmstrip.pipelines.timeline import Timeline

Maker = Callable[[dict[str, Pipeline], Timeline, "LongSuiteConfig", int], torch.Tensor]


@dataclass(frozen=True)
class LongSuiteConfig:
    seconds: float = 60.0
    fps: float = 8.0
    steps: int = 8  # per latent frame for the causal model
    sliding_steps: int = 20
    drift: DriftConfig = DriftConfig()

    def __post_init__(self):
        require(self, at_least={"steps": 1, "sliding_steps": 1}, above={"seconds": 0, "fps": 0})
        if self.seconds * self.fps < self.drift.window:
            raise InputError(
                f"{self.seconds:g} s at {self.fps:g} fps is shorter than one scored window of "
                f"{self.drift.window} frames; the suite compares a video's first and last {self.drift.span:g} s"
            )


def _causal(**overrides) -> Maker:
    def make(pipes, timeline, cfg, seed):
        sc = StreamConfig(seconds=cfg.seconds, fps=cfg.fps, steps=cfg.steps, seed=seed, **overrides)
        return torch.cat(list(stream(pipes["causal"], timeline, sc)), dim=1)

    return make


def _sliding(**overrides) -> Maker:
    def make(pipes, timeline, cfg, seed):
        sc = SlidingConfig(seconds=cfg.seconds, fps=cfg.fps, steps=cfg.sliding_steps, seed=seed, **overrides)
        return sliding_windows(pipes["bidirectional"], timeline, sc)

    return make


def _hierarchical(pipes, timeline, cfg, seed) -> torch.Tensor:
    hc = HierarchicalConfig(seconds=cfg.seconds, fps=cfg.fps, steps=cfg.sliding_steps, seed=seed)
    return hierarchical(pipes["bidirectional"], timeline, hc)


SINK = CacheConfig(window=3, sink=1, positions="reindex")
CONTINUE = CacheConfig(window=3, sink=1, positions="continue")
STRATEGIES: dict[str, tuple[str, Maker]] = {
    "naive": ("causal", _causal(cache=CacheConfig(window=0, sink=0))),
    "window": ("causal", _causal(cache=CacheConfig(window=4, sink=0))),
    "sink": ("causal", _causal(cache=SINK)),
    "sink-continue": ("causal", _causal(cache=CONTINUE)),
    "noisy-context": ("causal", _causal(cache=SINK, context_noise=0.1)),
    "pyramid": (
        "causal",
        _causal(cache=CacheConfig(window=2, sink=1, positions="reindex"), chunk=2, lag=1.0),
    ),
    "continue-noisy": ("causal", _causal(cache=CONTINUE, context_noise=0.1)),
    "continue-pyramid": ("causal", _causal(cache=CacheConfig(window=2, sink=1), chunk=2, lag=1.0)),
    "sliding": ("bidirectional", _sliding()),
    "sliding-freenoise": ("bidirectional", _sliding(noise_reuse=True)),
    "hierarchical": ("bidirectional", _hierarchical),
}


def run_long_suite(
    pipes: dict[str, Pipeline],
    strategies: Sequence[str],
    prompts: Sequence[tuple[str, dict]],
    cfg: LongSuiteConfig | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """{strategy: {"first": means, "last": means, "kept": last / first accuracy, "prompts":
    rows}} for (prompt, truth) pairs; prompt k uses seed + k under every strategy."""
    cfg = cfg or LongSuiteConfig()
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise InputError(f"unknown strategies {unknown}; choose from {', '.join(STRATEGIES)}")
    frames = round(cfg.seconds * cfg.fps)
    results = {}
    bar = tqdm(total=len(strategies) * len(prompts), desc="long videos", unit="video", disable=not progress)
    for name in strategies:
        model, make = STRATEGIES[name]
        rows = []
        for k, (prompt, truth) in enumerate(prompts):
            video = make(pipes, Timeline((0.0,), (prompt,)), cfg, seed + k)
            scores = first_and_last(
                window_scores(video, truth["objects"], cfg.fps, cfg.drift), frames, cfg.fps, cfg.drift
            )
            rows.append({"prompt": prompt, **scores})
            bar.update(1)
        first = {c: float(np.mean([r["first"][c] for r in rows])) for c in (*CHECKS, "accuracy")}
        last = {c: float(np.mean([r["last"][c] for r in rows])) for c in (*CHECKS, "accuracy")}
        results[name] = {"model": model, "first": first, "last": last,
                         "kept": last["accuracy"] / max(first["accuracy"], 1e-9), "prompts": rows}  # fmt: skip
    bar.close()
    return results


def switch_lag(
    video_cthw: torch.Tensor, new_objects: list[dict], switch_frame: int, fps: float = 8.0, window: int = 9
) -> float | None:
    """Seconds from `switch_frame` to the middle of the first window (of `window` frames,
    one starting at every frame) in which exactly the new prompt's objects are found (an
    object counts where it shows on most of the window's frames), each with its colour, shape
    and a direction its prompt's can bounce into, and which the next two windows confirm.
    None if that never happens."""
    frames = video_cthw.shape[1]
    wanted = {o["colour"]: o for o in new_objects}

    def holds(start: int) -> bool:
        found = {d.colour: d for d in detect(video_cthw[:, start : start + window], fps)}
        return set(found) == set(wanted) and all(
            found[c].shape == o["shape"] and found[c].direction in bounce_directions(o["direction"])
            for c, o in wanted.items()
        )

    half = window // 2
    for start in range(max(0, switch_frame - half), frames - window - 1):
        if holds(start) and holds(start + 1) and holds(start + 2):
            return max(0, start + half - switch_frame) / fps
    return None


def prompt_pairs(
    prompts: Sequence[tuple[str, dict]], n: int
) -> list[tuple[tuple[str, dict], tuple[str, dict]]]:
    """n (before, after) pairs of one-object prompts whose objects differ in colour."""
    ones = [p for p in prompts if len(p[1]["objects"]) == 1]
    pairs = []
    for a, b in zip(ones, ones[1:], strict=False):
        if a[1]["objects"][0]["colour"] != b[1]["objects"][0]["colour"]:
            pairs.append((a, b))
        if len(pairs) == n:
            break
    return pairs


def run_switches(
    pipes: dict[str, Pipeline],
    strategies: Sequence[str],
    pairs: Sequence[tuple[tuple[str, dict], tuple[str, dict]]],
    cfg: LongSuiteConfig | None = None,
    switch_at: float = 20.0,
    seed: int = 0,
) -> dict:
    """{strategy: {"lags": seconds (None: never), "within_2s": share}}: each pair as a
    timeline of its first prompt from 0 s and its second from `switch_at` (a video of twice
    that), and how soon after the switch the second prompt's object alone is on screen."""
    cfg = cfg or LongSuiteConfig()
    out = {}
    for name in strategies:
        make = STRATEGIES[name][1]
        lags = []
        for k, ((before, _), (after, truth)) in enumerate(pairs):
            timeline = Timeline((0.0, switch_at), (before, after))
            video = make(pipes, timeline, replace(cfg, seconds=2 * switch_at), seed + k)
            lags.append(switch_lag(video, truth["objects"], round(switch_at * cfg.fps), cfg.fps))
        out[name] = {
            "lags": lags,
            "within_2s": float(np.mean([lag is not None and lag <= 2.0 for lag in lags])),
        }
    return out
