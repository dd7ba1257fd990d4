"""`filmstrip vae ...` end to end with a tiny model trained for a few steps."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import smooth_video

from filmstrip.cli import main
from filmstrip.errors import InputError
from filmstrip.io import probe, write_video


def train_args(run, steps: int) -> list[str]:
    return ["vae", "train", "--preset", "tiny", "--run", str(run), "--steps", str(steps), "--batch-size", "2",
            "--frames", "5", "--size", "16", "--workers", "0", "--data", "shapes"]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    result = CliRunner().invoke(main, train_args(run, 3))
    assert result.exit_code == 0, result.output
    assert "parameters" in result.output and (run / "model" / "config.json").exists()
    return run


def test_train_resumes_an_existing_run(tiny_run):
    """A resumed run goes on; one resumed with other settings says which and keeps the recipe
    its first steps were made with."""
    result = CliRunner().invoke(main, train_args(tiny_run, 4))
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output and "from step 3" in result.output
    assert (
        "resuming at step 3 with settings other than the run began with (train.steps 3 -> 4)" in result.output
    )
    assert "steps = 3" in (tiny_run / "recipe.until_step_0000003.toml").read_text()
    assert "steps = 4" in (tiny_run / "recipe.toml").read_text()
    again = CliRunner().invoke(main, train_args(tiny_run, 4))
    assert again.exit_code == 0 and "settings other than" not in again.output


def test_learned_time_upsampling_fine_tunes_a_trained_decoder(tiny_run, tmp_path):
    args = train_args(tmp_path / "ft", 2) + ["--init", str(tiny_run / "model"), "--freeze-encoder"]
    result = CliRunner().invoke(main, [*args, "--time-upsample", "learned"])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "ft" / "model" / "config.json").read_text())["config"]
    assert config["time_upsample"] == "learned"
    result = CliRunner().invoke(main, ["vae", "train", "--preset", "tiny2d", "--time-upsample", "learned",
                                       "--run", str(tmp_path / "2d"), "--steps", "1"])  # fmt: skip
    assert result.exit_code != 0 and "2D baseline" in result.output


def test_reconstruct_encode_decode(tiny_run, tmp_path):
    clip = tmp_path / "in.mp4"
    write_video(clip, torch.from_numpy(smooth_video(7, 24, 40)).permute(3, 0, 1, 2), fps=10)
    model = str(tiny_run / "model")
    runner = CliRunner()
    out = tmp_path / "out.mp4"
    result = runner.invoke(main, ["vae", "reconstruct", str(clip), "-o", str(out), "-c", model])
    assert result.exit_code == 0, result.output
    assert "PSNR" in result.output and "SSIM" in result.output and "flicker" in result.output
    info = probe(out)
    assert (info.num_frames, info.height, info.width) == (7, 24, 40)  # 24x40 is already /8

    latents = tmp_path / "z.safetensors"
    result = runner.invoke(main, ["vae", "encode", str(clip), "-o", str(latents), "-c", model])
    assert result.exit_code == 0, result.output
    assert "(4, 3, 3, 5)" in result.output  # 7 frames -> 1 + ceil(6/4) = 3 latent frames
    decoded = tmp_path / "decoded.mp4"
    result = runner.invoke(main, ["vae", "decode", str(latents), "-o", str(decoded)])
    assert result.exit_code == 0, result.output
    assert probe(decoded).num_frames == 7 and probe(decoded).fps == 10
    # Encoded with a relative path, decoded from another folder: the file records where its
    # autoencoder is, not a path that only means something where it was written.
    import os

    here = os.getcwd()
    try:
        os.chdir(tiny_run.parent)
        relative = str((tiny_run / "model").relative_to(tiny_run.parent))
        assert (
            runner.invoke(main, ["vae", "encode", str(clip), "-o", str(latents), "-c", relative]).exit_code
            == 0
        )
        os.chdir(tmp_path)
        result = runner.invoke(main, ["vae", "decode", str(latents), "-o", str(decoded)])
        assert result.exit_code == 0, result.output
    finally:
        os.chdir(here)
    result = runner.invoke(
        main, ["vae", "compare", str(clip), "-c", f"tiny={model}", "--size", "24", "--frames", "5"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "lpips" in lines[0] and sum(line.startswith("mean") for line in lines) == 3  # tiny, bicubic /8, /4
    result = runner.invoke(main, ["vae", "compare", str(clip), "-c", model])
    assert result.exit_code != 0 and "NAME=PATH" in result.output
    tiled = tmp_path / "tiled.mp4"
    result = runner.invoke(main, ["vae", "decode", str(latents), "-o", str(tiled), "--tile", "4"])
    assert result.exit_code == 0, result.output
    info = probe(tiled)
    assert (info.num_frames, info.height, info.width) == (7, 24, 40)


def test_eval_prints_metrics(tiny_run):
    result = CliRunner().invoke(
        main,
        [
            "vae",
            "eval",
            "-c",
            str(tiny_run / "model"),
            "--data",
            "digits",
            "--clips",
            "3",
            "--frames",
            "5",
            "--size",
            "32",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output.strip().splitlines()[-1])
    assert metrics["clips"] == 3 and np.isfinite(metrics["psnr"]) and 0 < metrics["ssim"] <= 1
    # No clips is refused (it was a KeyError on the empty table), in the CLI and the function.
    none = CliRunner().invoke(main, ["vae", "eval", "-c", str(tiny_run / "model"), "--clips", "0"])
    assert none.exit_code == 2 and "'--clips': 0 is not in the range x>=1" in none.output
    from filmstrip.data import build_dataset
    from filmstrip.eval.reconstruction import evaluate
    from filmstrip.models.vae import load_vae

    with pytest.raises(InputError, match="num_clips and batch_size must be at least 1"):
        evaluate(load_vae(tiny_run / "model"), build_dataset("digits", 5, 32, 32), 0)


def test_clear_errors(tiny_run, tmp_path):
    runner = CliRunner()
    tiny = tmp_path / "tiny.mp4"
    write_video(tiny, torch.zeros(3, 3, 6, 6, dtype=torch.uint8), fps=5)
    result = runner.invoke(
        main, ["vae", "reconstruct", str(tiny), "-o", str(tmp_path / "o.mp4"), "-c", str(tiny_run / "model")]
    )
    assert result.exit_code == 1 and "smaller than the autoencoder's 8x8" in result.output
    result = runner.invoke(
        main,
        ["vae", "reconstruct", str(tiny), "-o", str(tmp_path / "o.mp4"), "-c", str(tmp_path / "nothing")],
    )
    assert result.exit_code == 1 and "no such checkpoint" in result.output
    result = runner.invoke(main, ["vae", "decode", str(tiny), "-o", str(tmp_path / "o.mp4")])
    assert result.exit_code == 1 and "not a latent file" in result.output
    assert "Traceback" not in result.output


def test_shape_options_make_a_new_model_and_refuse_an_init(tiny_run, tmp_path):
    """--channels, --temporal-factor and --latent-channels shape a model trained from scratch:
    e.g. 2x time and 8 channels, the same 48x compression as the default 4x time and 16."""
    shape = ["--channels", "8,16,32", "--temporal-factor", "2", "--latent-channels", "8"]
    result = CliRunner().invoke(main, train_args(tmp_path / "t2", 1) + shape)
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "t2" / "model" / "config.json").read_text())["config"]
    assert (config["channels"], config["temporal_factor"], config["latent_channels"]) == ([8, 16, 32], 2, 8)
    refused = CliRunner().invoke(
        main, [*train_args(tmp_path / "ft", 1), "--init", str(tiny_run / "model"), *shape]
    )
    assert refused.exit_code != 0 and "temporal_factor" in refused.output and "init" in refused.output
    odd = CliRunner().invoke(main, [*train_args(tmp_path / "t3", 1), "--temporal-factor", "3"])
    assert odd.exit_code == 1 and "power of two" in odd.output
    fsq = CliRunner().invoke(
        main, [*train_args(tmp_path / "t4", 1), "--preset", "tinyfsq", "--latent-channels", "8"]
    )
    assert fsq.exit_code != 0 and "FSQ" in fsq.output


def test_vae_train_refuses_a_size_it_cannot_encode_before_the_run_starts(tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(
        main, ["vae", "train", "--data", "shapes", "--run", str(run), "--size", "30", "--steps", "1"]
    )
    assert result.exit_code == 1 and "a 30x30 frame cannot be encoded" in result.output
    assert not run.exists()
