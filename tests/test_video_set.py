"""`filmstrip sample`: a folder of generated videos, resumable, the same whatever the batch."""

import json

import pytest
import torch
from click.testing import CliRunner

from filmstrip.cli import main
from filmstrip.data import build_dataset
from filmstrip.errors import InputError
from filmstrip.io import read_video, write_video
from filmstrip.pipelines.generate import GenerateConfig, generate, load_pipeline
from filmstrip.pipelines.video_set import _runs, read_prompt_file, write_video_set

PROMPTS = ["a red circle moves up", "a blue square moves left"]
CFG = GenerateConfig(frames=5, height=32, width=32, steps=2, seed=7)


@pytest.fixture(scope="module")
def pipe(tiny_bundle):
    return load_pipeline(tiny_bundle)


def test_a_set_is_every_prompt_sampled_from_its_own_seed_and_resumes(pipe, tmp_path):
    out = write_video_set(pipe, PROMPTS, CFG, tmp_path / "set", samples=2, batch=3, progress=False)
    rows = [json.loads(line) for line in (out / "captions.jsonl").read_text().splitlines()]
    assert [(r["file"], r["caption"], r["seed"]) for r in rows] == [
        ("00000.mp4", PROMPTS[0], 7), ("00001.mp4", PROMPTS[0], 8), ("00002.mp4", PROMPTS[1], 9), ("00003.mp4", PROMPTS[1], 10)
    ]  # fmt: skip
    # Video k is what generating its prompt alone from seed + k makes (batched in threes here).
    alone = generate(pipe, [PROMPTS[1]], GenerateConfig(**{**vars(CFG), "seed": 10}))[0]
    write_video(tmp_path / "alone.mp4", alone, fps=8)  # both through H.264
    made, alone = (read_video(p, dtype=torch.float32)[0] for p in (out / "00003.mp4", tmp_path / "alone.mp4"))
    assert (made - alone).abs().mean() < 0.01
    # A re-run makes only what is missing, with any batch size.
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.mp4")}
    (out / "00001.mp4").unlink()
    write_video_set(pipe, PROMPTS, CFG, out, samples=2, batch=1, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.mp4") if p.name != "00001.mp4"} == {
        k: v for k, v in mtimes.items() if k != "00001.mp4"
    }
    assert (out / "00001.mp4").exists()
    # The folder reads as a captioned dataset.
    data = build_dataset(f"folder:{out}", num_frames=5, height=32, width=32)
    assert len(data) == 4 and sorted(data[i]["caption"] for i in range(4)) == sorted(PROMPTS * 2)


def test_a_set_refuses_to_mix_with_another(pipe, tmp_path):
    out = write_video_set(pipe, PROMPTS[:1], CFG, tmp_path / "set", progress=False)
    with pytest.raises(InputError, match="made with other prompts, samples"):
        write_video_set(pipe, PROMPTS, CFG, out, samples=2, progress=False)
    with pytest.raises(InputError, match="made with other generate"):
        write_video_set(pipe, PROMPTS[:1], GenerateConfig(**{**vars(CFG), "steps": 3}), out, progress=False)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty and holds no video set"):
        write_video_set(pipe, PROMPTS, CFG, tmp_path / "busy", progress=False)
    with pytest.raises(InputError, match="a set is a folder of videos"):
        write_video_set(pipe, PROMPTS, CFG, tmp_path / "set.mp4", progress=False)
    with pytest.raises(InputError, match="is a file"):
        write_video_set(pipe, PROMPTS, CFG, tmp_path / "busy" / "notes.txt", progress=False)
    with pytest.raises(InputError, match="the prompt is empty"):
        write_video_set(pipe, ["a red circle", " "], CFG, tmp_path / "blank", progress=False)
    assert not (tmp_path / "blank").exists()  # refused before the folder


def test_prompt_files_and_batches(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("# shapes\na red circle moves up\n\n  a blue square moves left  \n")
    assert read_prompt_file(path) == PROMPTS
    for text, words in (("# only a comment\n\n", "holds no prompt"), (b"\xff\xfe\x00", "not a text file")):
        (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
        with pytest.raises(InputError, match=words):
            read_prompt_file(path)
    with pytest.raises(InputError, match="no such prompt file"):
        read_prompt_file(tmp_path / "missing.txt")
    assert _runs([0, 1, 2, 3, 4, 7, 8, 10], 2) == [(0, 2), (2, 4), (4, 5), (7, 9), (10, 11)]


def test_sample_command(tiny_bundle, tmp_path):
    (tmp_path / "p.txt").write_text("\n".join(PROMPTS) + "\n")
    args = ["sample", str(tmp_path / "p.txt"), "-o", str(tmp_path / "set"), "-c", str(tiny_bundle)]
    args += ["--size", "48x32", "--frames", "5", "--steps", "2", "--samples", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "set").glob("*.mp4")) == [f"0000{k}.mp4" for k in range(4)]
    assert read_video(tmp_path / "set" / "00000.mp4")[0].shape == (3, 5, 32, 48)
    info = CliRunner().invoke(main, ["info", str(tmp_path / "set")]).output
    assert "set: a set of 4 generated videos (complete)" in info and "2 prompts x 2 samples" in info
    assert "5 frames at 48x32" in info
    again = CliRunner().invoke(main, [*args[:-1], "3"])
    assert again.exit_code == 1 and "made with other samples" in again.output
    bad = CliRunner().invoke(
        main, ["sample", str(tmp_path / "p.txt"), "-o", str(tmp_path / "x"), "--samples", "0"]
    )
    assert bad.exit_code == 2 and "--samples" in bad.output


def test_ctrl_c_says_how_far_the_set_got(tiny_bundle, tmp_path, monkeypatch):
    import filmstrip.pipelines.video_set as video_set

    def interrupted(pipe, prompts, cfg, out, *args, **kwargs):
        out.mkdir()
        (out / "00000.mp4").write_bytes(b"")
        raise KeyboardInterrupt

    monkeypatch.setattr(video_set, "write_video_set", interrupted)
    (tmp_path / "p.txt").write_text("\n".join(PROMPTS) + "\n")
    args = [
        "sample",
        str(tmp_path / "p.txt"),
        "-o",
        str(tmp_path / "set"),
        "-c",
        str(tiny_bundle),
        "--samples",
        "3",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 130 and "interrupted: 1 of 6 videos made; run again to finish" in result.output


def test_a_large_set_needs_the_memory_of_one_batch(pipe, tmp_path, monkeypatch):
    """The memory check counted every prompt of the file at once: a file of 200 prompts was
    refused on a machine that makes them 8 at a time with room to spare."""
    import filmstrip.io.memory as memory
    import filmstrip.pipelines.video_set as video_set
    from filmstrip.pipelines.denoise import latent_shape, memory_estimate

    shape = latent_shape(pipe, 8, CFG.frames, CFG.height, CFG.width)
    one_batch = memory_estimate(pipe, shape, CFG.frames)
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: 2 * one_batch)
    made = []
    monkeypatch.setattr(
        video_set,
        "generate",
        lambda p, prompts, cfg, negative: (
            made.append(len(prompts)) or torch.zeros(len(prompts), 3, 5, 32, 32)
        ),
    )
    write_video_set(pipe, PROMPTS * 100, CFG, tmp_path / "set", batch=8, progress=False)
    assert sum(made) == 200 and max(made) == 8
