"""The `filmstrip` command end to end: real files out, one clear line on bad input."""

import re
import subprocess
import sys

from click.testing import CliRunner

from filmstrip.cli import main
from filmstrip.io import probe


def test_preview_writes_a_playable_grid_and_prints_its_path(tmp_path):
    out = tmp_path / "grid.mp4"
    result = CliRunner().invoke(
        main, ["data", "preview", "shapes", "-o", str(out), "-n", "3", "--frames", "6", "--size", "32"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out)
    info = probe(out)
    assert info.num_frames == 6 and info.fps == 8
    assert info.width > 3 * 32  # three tiles side by side, scaled up for the captions


def test_preview_digits_as_gif(tmp_path):
    out = tmp_path / "digits.gif"
    result = CliRunner().invoke(
        main, ["data", "preview", "digits", "-o", str(out), "-n", "2", "--frames", "4"]
    )
    assert result.exit_code == 0, result.output
    assert probe(out).num_frames == 4


def test_bad_input_gives_one_line_and_exit_code_one(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["data", "preview", "imagenet", "-o", str(tmp_path / "x.mp4")])
    assert result.exit_code == 1 and "unknown dataset 'imagenet'" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(main, ["data", "probe", str(tmp_path / "missing.mp4")])
    assert result.exit_code == 1 and "no such file" in result.output
    result = runner.invoke(
        main, ["data", "preview", "shapes", "-o", str(tmp_path / "x.avi"), "-n", "1", "--frames", "2"]
    )
    assert result.exit_code == 1 and "cannot write '.avi'" in result.output


def test_commands_refuse_to_make_nothing():
    runner = CliRunner()
    for args in (
        ["adherence", "--prompts", "0"],
        ["conditioning", "--scenes", "0"],
        ["motion", "--prompts", "0"],
    ):
        result = runner.invoke(main, ["eval", *args])
        assert result.exit_code == 2 and "0 is not in the range x>=1" in result.output, args
    # Nor does generate draw a clip it cannot write (fps 0), only to say so afterwards.
    result = runner.invoke(main, ["generate", "x", "--fps", "0"])
    assert result.exit_code == 2 and "0.0 is not in the range x>0" in result.output


def test_a_warning_about_the_input_is_one_line(tmp_path):
    """The work goes on past a truncated video, and says so in one line, not with Python's
    file, line and source."""
    from conftest import smooth_video

    from filmstrip.io import write_video

    full = write_video(tmp_path / "full.mp4", smooth_video(30, 64, 64).transpose(3, 0, 1, 2), fps=10)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 6 // 10])
    result = CliRunner().invoke(main, ["data", "cuts", str(cut)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    said = [line for line in lines if line.startswith(f"Warning: {cut}: truncated or corrupt; ")]
    assert len(said) == 1 and re.search(r"; \d+ damaged packets? skipped$", said[0])
    assert "UserWarning" not in result.output and "iter_frames" not in result.output
    assert lines[-1].startswith("0 cuts in")


def test_module_entry_point_runs():
    result = subprocess.run(
        [sys.executable, "-m", "filmstrip", "--help"], capture_output=True, text=True, check=True
    )
    assert "data" in result.stdout


def test_the_program_exits_quickly_with_its_exit_code():
    """`filmstrip` (and `python -m filmstrip`) run `main`, then freeze the garbage collector so
    that the exit skips walking torch's objects; exit codes pass through."""
    import subprocess
    import sys

    code = (
        "import gc, sys; sys.argv = ['filmstrip', '--help']\n"
        "from filmstrip.cli import entry\n"
        "try:\n    entry()\nexcept SystemExit as e:\n    print(e.code, gc.get_freeze_count() > 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("0 True")
    bad = subprocess.run(
        [sys.executable, "-m", "filmstrip", "data", "probe", "/no/such/file.mp4"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "could not be read" in bad.stderr


def test_commands_load_lazily_and_help_imports_no_torch():
    """`filmstrip --help` lists every command from a static table without importing torch;
    each entry resolves to the command it names."""
    import subprocess
    import sys

    import click

    from filmstrip.cli import COMMANDS

    code = "import sys; from filmstrip.cli import main; main(['--help'], standalone_mode=False); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")
    assert all(name in out for name in COMMANDS)
    for name in COMMANDS:
        command = main.get_command(click.Context(main), name)
        assert isinstance(command, click.Command) and command.name in (name, f"{name}_group")


def test_info_says_what_a_path_holds_without_loading_weights(tmp_path):
    import torch

    from filmstrip.io import write_video

    names = ["t2v", "lora_star", "controlnet_masks", "vae3d", "world_pong"]
    result = CliRunner().invoke(main, ["info", *names])
    assert result.exit_code == 0, result.output
    for words in (
        "t2v: a dit model, 11.92M parameters (F16)",
        "text refiner 2",
        "shapes: 17 frames at 64x64",
        "lora.safetensors: a LoRA of rank 8 (alpha 8) on 42 layers",
        "base model: t2v",
        "vae3d: a vae model",
        "4x time, 8x space, 16 latent channels",
        "world_pong: a world model, 2.37M parameters",  # the start frames (uint8) are not parameters
    ):
        assert words in result.output, words
    write_video(tmp_path / "a.mp4", torch.zeros(3, 2, 16, 16, dtype=torch.uint8), fps=8)
    result = CliRunner().invoke(main, ["info", str(tmp_path / "a.mp4"), str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert (
        "not a filmstrip model, LoRA, latent cache, run, prepared folder or video set (for a video: `filmstrip data probe`)"
        in result.output
    )
    assert "nope: no such file or folder" in result.output
