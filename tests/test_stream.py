"""Long and streaming video: schedule matrices, the cached rollout == the matrix, timelines,
and a streamed file that survives an interruption."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import causal_inputs as inputs
from conftest import causal_model

from filmstrip.diffusion.forcing import RolloutConfig, rollout
from filmstrip.diffusion.sampling import autoregressive_schedule, sample, schedule
from filmstrip.errors import InputError
from filmstrip.io import read_video
from filmstrip.io.errors import VideoWriteError
from filmstrip.io.stream_writer import StreamWriter
from filmstrip.models.kv_cache import CacheConfig, KVCache
from filmstrip.pipelines.stream import chunk_seconds
from filmstrip.pipelines.timeline import parse_timeline


@pytest.mark.parametrize("kind", ["full", "autoregressive", "pyramid"])
def test_schedule_matrices_have_the_right_shape_and_only_fall(kind):
    steps, frames = 4, 6
    if kind == "full":
        m = schedule(steps, frames, shift=3.0)
        assert m.shape == (steps + 1, frames)
        assert torch.equal(m, m[:, :1].expand_as(m))  # every frame at one level
    elif kind == "pyramid":
        m = schedule(steps, frames, shift=3.0, lag=1.0)
        assert m.shape == (steps + 1, frames)
        assert (m[1:-1].diff(dim=1) >= 0).all() and (m[2] > m[2, 0]).any()  # later frames trail
    else:
        m = autoregressive_schedule(steps, frames, chunk=2, shift=3.0)
        assert m.shape == (3 * steps + 1, frames)
        # Chunk c moves only in its own rows; before them it is noise, after them clean.
        moving = m.diff(dim=0) != 0  # (rows - 1, T)
        for c in range(3):
            rows = moving[:, 2 * c : 2 * c + 2].any(dim=1).nonzero().flatten()
            assert rows.tolist() == list(range(c * steps, (c + 1) * steps))
    assert (m[0] == 1).all() and (m[-1] == 0).all()
    assert (m.diff(dim=0) <= 0).all()  # a noise level never rises


def test_cached_rollout_equals_sampling_the_autoregressive_matrix():
    """The KV-cache rollout of diffusion/forcing.py (denoise a chunk reading the cache, then
    commit it at level 0) is the autoregressive schedule matrix run through `sample` on the
    whole clip, computed without recomputing the past."""
    model = causal_model()
    noise, _, cond = inputs(b=1, frames=4)
    steps = 3

    def full(x, t):
        return model(x, t, cond)

    reference = sample(full, noise, autoregressive_schedule(steps, 4, chunk=2))
    cache = KVCache.for_model(model, CacheConfig(window=0, sink=0))
    chunks = list(
        rollout(model, cache, lambda k: [cond], [], noise.split(2, dim=2), RolloutConfig(steps=steps))
    )
    torch.testing.assert_close(torch.cat(chunks, dim=2), reference, rtol=0, atol=1e-10)


def test_chunk_seconds_follow_the_causal_vae():
    assert chunk_seconds(0, 4, 8.0) == 0.0
    assert chunk_seconds(1, 4, 8.0) == 1 / 8  # latent frame 1 shows pixel frames 1..4
    assert chunk_seconds(3, 4, 8.0) == 9 / 8


def test_timeline_parsing():
    t = parse_timeline(
        ["0s: a red circle moves right", "20s: a blue square moves up", "30.5 s : a green one"]
    )
    assert t.starts == (0.0, 20.0, 30.5)
    assert t.prompt_at(0) == t.prompt_at(19.9) == "a red circle moves right"
    assert t.prompt_at(20) == "a blue square moves up" and t.prompt_at(99) == "a green one"
    assert parse_timeline(["a red circle moves right"]).prompts == ("a red circle moves right",)
    t.check_length(31)
    with pytest.raises(InputError, match="starts after the video ends"):
        t.check_length(30)


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (["0s: a", "20s: b", "10s: c"], "list the prompts in time order"),
        (["0s: a", "0s: b"], "not after the entry before it"),
        (["5s: a", "9s: b"], "needs a prompt at 0s"),
        (["0s: a", "a blue square"], "has no start time"),
        (["0s: a", "10s:  "], "has no prompt after the time"),
        ([], "give a prompt"),
        (["   "], "the prompt is empty"),
    ],
)
def test_timeline_errors_name_the_entry(entries, message):
    with pytest.raises(InputError, match=message):
        parse_timeline(entries)


def stripes(k, n=8):
    v = np.zeros((3, n, 64, 64), np.uint8)
    v[:, :, :, 8 * k : 8 * (k + 1)] = 220
    return v


def test_stream_writer_output_grows_and_reads_back(tmp_path):
    path = tmp_path / "s.mp4"
    with StreamWriter(path, fps=8, height=64, width=64) as out:
        out.write(stripes(0))
        size_one = path.stat().st_size
        for k in range(1, 5):
            out.write(stripes(k))
        assert path.stat().st_size > size_one  # fragments reach the disk as they are made
    video, info = read_video(path)
    assert video.shape == (3, 40, 64, 64) and info.fps == pytest.approx(8.0)
    assert int(video[0, 35, 32, 36]) > 200 and int(video[0, 35, 32, 4]) < 20  # the last stripe


def test_ctrl_c_leaves_a_playable_file(tmp_path):
    path = tmp_path / "s.mp4"
    with pytest.raises(KeyboardInterrupt), StreamWriter(path, fps=8, height=64, width=64) as out:
        for k in range(3):
            out.write(stripes(k))
        raise KeyboardInterrupt
    assert read_video(path)[0].shape[1] == 24


def test_a_killed_writer_leaves_every_finished_fragment_playable(tmp_path):
    # The process dies without closing anything (as under SIGKILL): the fragments written
    # before (a keyframe, so a fragment, every second) still play.
    path = tmp_path / "s.mp4"
    code = (
        "import os, numpy as np\n"
        "from filmstrip.io.stream_writer import StreamWriter\n"
        f"out = StreamWriter({str(path)!r}, fps=8, height=64, width=64)\n"
        "for k in range(5):\n"
        "    v = np.zeros((3, 8, 64, 64), np.uint8); v[:, :, :, 8 * k : 8 * k + 8] = 220\n"
        "    out.write(v)\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    frames = read_video(path)[0].shape[1]
    assert 24 <= frames <= 40


def test_stream_writer_to_a_pipe_is_a_fragmented_mp4(tmp_path):
    r, w = os.pipe()
    with os.fdopen(w, "wb") as pipe_w, StreamWriter(pipe_w, fps=8, height=64, width=64) as out:
        out.write(stripes(1, n=16))
    data = os.read(r, 1 << 20)
    os.close(r)
    assert data[4:8] == b"ftyp" and b"moof" in data
    (tmp_path / "piped.mp4").write_bytes(data)
    assert read_video(tmp_path / "piped.mp4")[0].shape[1] == 16


def test_stream_writer_errors():
    with pytest.raises(VideoWriteError, match="even size"):
        StreamWriter("/tmp/x.mp4", fps=8, height=63, width=64)
    with pytest.raises(VideoWriteError, match="streaming writes .mp4"):
        StreamWriter("/tmp/x.gif", fps=8, height=64, width=64)


# ---- the streaming pipeline and its CLI, on a tiny causal model -------------------------------
def frames_of(pipe, entries, seconds=2.0, **kw):
    from filmstrip.pipelines.stream import StreamConfig, stream

    cfg = StreamConfig(seconds=seconds, steps=2, **kw)
    return torch.cat(list(stream(pipe, parse_timeline(entries), cfg)), dim=1)


def test_stream_makes_every_frame_and_a_prompt_switch_never_changes_the_past(tiny_causal_bundle):
    from filmstrip.pipelines.denoise import load_pipeline

    pipe = load_pipeline(tiny_causal_bundle)
    one = frames_of(pipe, ["a red circle moves right"], seconds=3.0)
    assert one.shape == (3, 24, 64, 64)
    assert torch.equal(one, frames_of(pipe, ["a red circle moves right"], seconds=3.0))  # seeded
    switched = frames_of(pipe, ["0s: a red circle moves right", "2s: a blue square moves up"], seconds=3.0)
    # The switch at 2 s (pixel frame 16) first applies to latent frame 5, which shows pixel
    # frames 17-20 (latent frame k >= 1 shows 4k - 3 .. 4k); the causal model and the causal
    # decoder leave every frame before it exactly as the one-prompt run made it.
    first_new = 17
    assert torch.equal(switched[:, :first_new], one[:, :first_new])
    assert not torch.equal(switched[:, first_new:], one[:, first_new:])


def test_a_stream_needs_the_memory_of_its_window_not_of_the_whole_video(tiny_causal_bundle, monkeypatch):
    """A stream holds its cache's window and sinks, so an hour costs what a minute does; a
    cache that keeps everything (window 0) is checked for the whole video."""
    import filmstrip.io.memory as memory
    from filmstrip.pipelines.denoise import load_pipeline, memory_estimate
    from filmstrip.pipelines.stream import StreamConfig, stream_latents

    pipe = load_pipeline(tiny_causal_bundle)
    cfg = StreamConfig(seconds=3600.0, height=64, width=64)
    whole = memory_estimate(pipe, (1, 4, pipe.vae.latent_frames(cfg.frames), 8, 8), cfg.frames)
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: whole / 100)
    first = next(stream_latents(pipe, parse_timeline(["a red circle moves right"]), cfg))
    assert first.shape[2] == 1
    keep_all = StreamConfig(seconds=3600.0, height=64, width=64, cache=CacheConfig(window=0))
    with pytest.raises(InputError, match=r"generating 1 x 28800 frames at 64x64 needs about"):
        next(stream_latents(pipe, parse_timeline(["a red circle moves right"]), keep_all))
    # Without --stream the whole video is held before it is written: that is checked instead.
    from click.testing import CliRunner

    from filmstrip.cli import main

    monkeypatch.setattr(memory, "available_bytes", lambda device=None: 2**30)
    args = ["generate", "a red circle", "--seconds", "3600", "-c", str(tiny_causal_bundle), "-o", "x.mp4"]
    held = CliRunner().invoke(main, args)
    assert held.exit_code == 1 and "holding 28800 frames at 64x64 needs about 2.6 GiB" in held.output
    assert "with --stream" in held.output


def test_a_stream_names_words_a_shapes_model_never_read(tiny_causal_bundle):
    """The vocabulary warning of `generate` (pipelines/prepare.warn_unknown_words) also meets
    each prompt of a stream's timeline as it comes into play."""
    from dataclasses import replace

    from filmstrip.errors import FilmstripWarning
    from filmstrip.pipelines.denoise import load_pipeline
    from filmstrip.pipelines.stream import StreamConfig, stream_latents

    pipe = replace(load_pipeline(tiny_causal_bundle), trained_on="shapes 17x64x64")
    timeline = parse_timeline(["0s: a red circle moves up", "1s: a dog barks"])
    with pytest.warns(FilmstripWarning, match=r"never read 'barks', 'dog'"):
        list(stream_latents(pipe, timeline, StreamConfig(seconds=2.0, height=64, width=64, steps=1)))


def test_stream_refuses_a_bidirectional_model(tiny_bundle):
    from filmstrip.pipelines.denoise import load_pipeline

    with pytest.raises(InputError, match="streaming needs a causal model"):
        frames_of(load_pipeline(tiny_bundle), ["a red circle"])


def test_cli_streams_a_timeline_to_a_file_and_to_stdout(tiny_causal_bundle, tmp_path):
    from click.testing import CliRunner

    from filmstrip.cli import main

    out = tmp_path / "long.mp4"
    args = ["generate", "-c", str(tiny_causal_bundle), "--seconds", "3", "--steps", "2", "--stream",
            "--prompt", "0s: a red circle moves right", "--prompt", "1.5s: a blue square moves up"]  # fmt: skip
    result = CliRunner().invoke(main, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert read_video(out)[0].shape[1] == 24
    piped = CliRunner().invoke(main, [*args, "-o", "-"])
    assert piped.exit_code == 0
    data = piped.stdout_bytes
    assert data[4:8] == b"ftyp" and b"moof" in data
    (tmp_path / "piped.mp4").write_bytes(data)
    assert read_video(tmp_path / "piped.mp4")[0].shape[1] == 24
    # Not in time order: one sentence, before any model work.
    bad = CliRunner().invoke(main, ["generate", "--seconds", "3", "--prompt", "2s: b", "--prompt", "0s: a"])
    assert bad.exit_code != 0 and "time order" in bad.output
    alone = CliRunner().invoke(main, ["generate", "--prompt", "0s: a"])
    assert alone.exit_code != 0 and "go with --seconds" in alone.output


def test_ctrl_c_while_streaming_leaves_a_playable_file(tiny_causal_bundle, tmp_path, monkeypatch):
    from click.testing import CliRunner

    import filmstrip.pipelines.stream as stream_module
    from filmstrip.cli import main

    real = stream_module.stream

    def interrupted(*args, **kwargs):
        for k, chunk in enumerate(real(*args, **kwargs)):
            if k == 3:
                raise KeyboardInterrupt
            yield chunk

    monkeypatch.setattr(stream_module, "stream", interrupted)
    out = tmp_path / "cut.mp4"
    result = CliRunner().invoke(
        main,
        [
            "generate",
            "a red circle",
            "-c",
            str(tiny_causal_bundle),
            "--seconds",
            "4",
            "--steps",
            "2",
            "--stream",
            "-o",
            str(out),
        ],  # fmt: skip
    )
    assert result.exit_code == 130
    assert read_video(out)[0].shape[1] == 1 + 4 + 4  # the three chunks made before Ctrl-C


# ---- the bidirectional baseline: sliding windows ------------------------------------------------
def test_window_starts_cover_every_frame_and_end_at_the_last():
    from filmstrip.pipelines.longform import window_starts

    assert window_starts(121, 5, 2)[-1] == 116 and window_starts(121, 5, 2)[:3] == [0, 2, 4]
    assert window_starts(12, 5, 3) == [0, 3, 6, 7]
    assert window_starts(4, 5, 2) == [0]


def test_freenoise_reuses_the_first_windows_noise_shuffled():
    from filmstrip.pipelines.longform import sliding_noise

    fresh = sliding_noise((1, 4, 12, 2, 2), 5, seed=0, reuse=False)
    reused = sliding_noise((1, 4, 12, 2, 2), 5, seed=0, reuse=True)
    base = reused[:, :, :5]
    for block in (reused[:, :, 5:10], reused[:, :, 10:12]):
        for k in range(block.shape[2]):  # every later frame is one of the first window's
            assert any(torch.equal(block[:, :, k], base[:, :, j]) for j in range(5))
    assert not any(torch.equal(fresh[:, :, 7], fresh[:, :, j]) for j in range(5))


def test_one_window_is_plain_full_sequence_sampling(tiny_bundle):
    from filmstrip.pipelines.denoise import decode, load_pipeline
    from filmstrip.pipelines.generate import GenerateConfig, generate
    from filmstrip.pipelines.longform import SlidingConfig, sliding_latents, sliding_noise

    pipe = load_pipeline(tiny_bundle)
    cfg = SlidingConfig(seconds=17 / 8, steps=3, window=5, seed=4)
    z = sliding_latents(pipe, parse_timeline(["a red circle moves right"]), cfg)
    assert z.shape[2] == 5
    ref = generate(pipe, ["a red circle moves right"], GenerateConfig(frames=17, steps=3, seed=4))
    # generate draws its noise from seed 4 as sliding_noise does without re-use.
    assert torch.equal(
        sliding_noise(tuple(z.shape), 5, 4, False),
        torch.randn(z.shape[1:], generator=torch.Generator().manual_seed(4))[None],
    )
    torch.testing.assert_close(decode(pipe, z, 17), ref, rtol=1e-4, atol=1e-4)


def test_overlapping_windows_make_a_long_video_and_each_window_reads_its_prompt(tiny_bundle):
    from filmstrip.pipelines.denoise import load_pipeline
    from filmstrip.pipelines.longform import SlidingConfig, sliding_windows

    pipe = load_pipeline(tiny_bundle)
    cfg = SlidingConfig(seconds=6, steps=2, stride=2)
    one = sliding_windows(pipe, parse_timeline(["a red circle moves right"]), cfg)
    assert one.shape == (3, 48, 64, 64) and one.abs().max() <= 1
    two = sliding_windows(pipe, parse_timeline(["0s: a red circle moves right", "2s: a blue square"]), cfg)
    assert not torch.equal(one, two)


def test_hierarchical_pins_segments_to_keyframes_and_a_late_switch_keeps_the_early_segments(tiny_bundle):
    from filmstrip.pipelines.denoise import load_pipeline
    from filmstrip.pipelines.longform import HierarchicalConfig, hierarchical

    pipe = load_pipeline(tiny_bundle)
    cfg = HierarchicalConfig(seconds=6, steps=2, segment=8)
    one = hierarchical(pipe, parse_timeline(["a red circle moves right"]), cfg)
    assert one.shape == (3, 48, 64, 64)
    two = hierarchical(pipe, parse_timeline(["0s: a red circle moves right", "3s: a blue square"]), cfg)
    # Segments 0-2 (frames 0-24) read the first prompt and keyframes made before the switch.
    assert torch.equal(one[:, :25], two[:, :25]) and not torch.equal(one[:, 25:], two[:, 25:])


def test_eval_long_names_every_strategy():
    from filmstrip.cli.eval import STRATEGY_NAMES
    from filmstrip.eval.long_suite import STRATEGIES

    assert tuple(STRATEGIES) == STRATEGY_NAMES


def test_cli_long_video_without_streaming_is_written_whole(tiny_causal_bundle, tmp_path):
    from click.testing import CliRunner

    from filmstrip.cli import main

    out = tmp_path / "whole.webm"
    result = CliRunner().invoke(
        main,
        [
            "generate",
            "a red circle",
            "-c",
            str(tiny_causal_bundle),
            "--seconds",
            "2",
            "--steps",
            "1",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert read_video(out)[0].shape[1] == 16
    bad = CliRunner().invoke(
        main, ["generate", "a red circle", "--seconds", "2", "--steps", "0", "-o", str(out)]
    )
    assert bad.exit_code == 1 and "at least one sampling step" in bad.output


def test_a_causal_model_samples_short_clips_on_a_pyramid_by_default(tiny_bundle, tiny_causal_bundle):
    from filmstrip.pipelines.denoise import default_lag, load_pipeline
    from filmstrip.pipelines.generate import GenerateConfig, generate

    causal, bidir = load_pipeline(tiny_causal_bundle), load_pipeline(tiny_bundle)
    assert default_lag(causal) == 1.0 and default_lag(bidir) == 0.0
    for pipe, lag in ((causal, 1.0), (bidir, 0.0)):
        default = generate(pipe, ["a red circle"], GenerateConfig(steps=3))
        assert torch.equal(default, generate(pipe, ["a red circle"], GenerateConfig(steps=3, lag=lag)))
    assert not torch.equal(
        generate(causal, ["a red circle"], GenerateConfig(steps=3)),
        generate(causal, ["a red circle"], GenerateConfig(steps=3, lag=0.0)),
    )
