"""The drift evaluator on long `shapes` clips whose ground truth is known for the whole minute."""

import pytest
import torch

from filmstrip.data.shapes import ShapesConfig, ShapesDataset
from filmstrip.eval.drift import DriftConfig, bounce_directions, first_and_last, window_scores


@pytest.fixture(scope="module")
def long_clips():
    ds = ShapesDataset(ShapesConfig(num_frames=481, num_clips=6, seed=5))
    return [ds[i] for i in range(6)]


def test_bounce_directions():
    assert bounce_directions("right") == {"right", "left"}
    assert bounce_directions("up") == {"up", "down"}
    assert bounce_directions("up-right") == {"up-right", "up-left", "down-right", "down-left"}
    assert bounce_directions("still") == {"still"}


def test_real_minute_long_clips_score_near_100_percent_at_both_ends(long_clips):
    firsts, lasts = [], []
    for item in long_clips:
        rows = window_scores(item["video"], item["truth"]["objects"])
        assert len(rows) == 30  # 481 frames in windows of 17 sharing their end frames
        scores = first_and_last(rows, 481, 8.0)
        firsts.append(scores["first"]["accuracy"])
        lasts.append(scores["last"]["accuracy"])
    # Occlusion between objects costs a few checks (measured: 97-100% per clip).
    assert min(firsts) > 0.93 and min(lasts) > 0.93
    assert sum(firsts) / len(firsts) > 0.97 and sum(lasts) / len(lasts) > 0.97


def test_a_video_that_stalls_or_changes_colour_loses_its_last_window(long_clips):
    item = next(c for c in long_clips if len(c["truth"]["objects"]) == 1)
    video, objects = item["video"], item["truth"]["objects"]
    stalled = video.clone()
    stalled[:, 240:] = video[:, 240:241]  # motion stops half way
    s = first_and_last(window_scores(stalled, objects), 481, 8.0)
    assert s["first"]["accuracy"] == 1.0
    assert s["last"]["speed"] == 0.0 and s["last"]["direction"] == 0.0
    recoloured = video.clone()
    recoloured[:, 240:] = video[:, 240:].flip(0)  # RGB -> BGR: the object takes another colour
    s = first_and_last(window_scores(recoloured, objects), 481, 8.0)
    assert s["first"]["colour"] == 1.0 and s["last"]["colour"] == 0.0 and s["last"]["count"] == 0.0
    shrunk = video.clone()
    small = torch.nn.functional.interpolate(video[None, :, 240:], scale_factor=(1, 0.5, 0.5), mode="nearest")[
        0
    ]
    shrunk[:, 240:] = -1
    shrunk[:, 240:, 16:48, 16:48] = small
    s = first_and_last(window_scores(shrunk, objects), 481, 8.0)
    assert s["last"]["size"] == 0.0


def test_switch_lag_finds_when_the_new_prompt_shows():
    from filmstrip.eval.long_suite import switch_lag

    ds = ShapesDataset(ShapesConfig(num_frames=160, num_clips=2, seed=7, min_objects=1, max_objects=1))
    a, b = ds[0], ds[1]
    assert a["truth"]["objects"][0]["colour"] != b["truth"]["objects"][0]["colour"]
    new = b["truth"]["objects"]
    at_once = torch.cat([a["video"][:, :80], b["video"][:, 80:160]], dim=1)
    assert switch_lag(at_once, new, 80) == 0.0
    late = torch.cat([a["video"][:, :96], b["video"][:, 96:160]], dim=1)  # two seconds late
    assert switch_lag(late, new, 80) == 2.0
    assert switch_lag(a["video"][:, :160], new, 80) is None


def test_the_long_suite_runs_every_kind_of_strategy(tiny_bundle, tiny_causal_bundle):
    from filmstrip.eval.long_suite import LongSuiteConfig, run_long_suite
    from filmstrip.eval.prompt_suite import SuiteConfig, seen_prompts
    from filmstrip.pipelines.denoise import load_pipeline

    pipes = {"causal": load_pipeline(tiny_causal_bundle), "bidirectional": load_pipeline(tiny_bundle)}
    cfg = LongSuiteConfig(seconds=6, steps=2, sliding_steps=2, drift=DriftConfig(span=2.0))
    results = run_long_suite(
        pipes, ["sink", "pyramid", "sliding"], seen_prompts(SuiteConfig(), 2), cfg, progress=False
    )
    assert set(results) == {"sink", "pyramid", "sliding"}
    for r in results.values():
        assert len(r["prompts"]) == 2 and 0 <= r["first"]["accuracy"] <= 1 and 0 <= r["last"]["accuracy"] <= 1
    # A length the suite cannot score is refused before any video is made.
    from filmstrip.errors import InputError

    with pytest.raises(InputError, match="seconds must be more than 0"):
        LongSuiteConfig(seconds=-1)
    with pytest.raises(InputError, match="shorter than one scored window of 17 frames"):
        LongSuiteConfig(seconds=1)
    with pytest.raises(InputError, match="steps must be at least 1"):
        LongSuiteConfig(steps=0)


def test_switch_runs_pair_one_object_prompts_of_different_colours(tiny_causal_bundle):
    from filmstrip.eval.long_suite import LongSuiteConfig, prompt_pairs, run_switches
    from filmstrip.eval.prompt_suite import SuiteConfig, seen_prompts
    from filmstrip.pipelines.denoise import load_pipeline

    pairs = prompt_pairs(seen_prompts(SuiteConfig(), 60), 2)
    assert len(pairs) == 2
    for (_, a), (_, b) in pairs:
        assert (
            len(a["objects"]) == len(b["objects"]) == 1
            and a["objects"][0]["colour"] != b["objects"][0]["colour"]
        )
    pipes = {"causal": load_pipeline(tiny_causal_bundle)}
    out = run_switches(pipes, ["sink"], pairs[:1], LongSuiteConfig(steps=2), switch_at=2.0)
    assert len(out["sink"]["lags"]) == 1 and 0.0 <= out["sink"]["within_2s"] <= 1.0
