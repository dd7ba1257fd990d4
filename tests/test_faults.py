"""Bad input and damaged files get one sentence, never a silent wrong result."""

import shutil
import threading

import numpy as np
import pytest
from click.testing import CliRunner

from filmstrip.checkpoint import BUNDLED_DIR, CheckpointError, load_model
from filmstrip.cli import main
from filmstrip.io import VideoWriteError, check_output_path, probe, write_video


def test_damaged_weights_are_caught_by_their_checksum(tmp_path):
    shutil.copytree(BUNDLED_DIR / "vae2d", tmp_path / "vae")
    weights = tmp_path / "vae" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4000] = bytes(4000)  # a few thousand bytes zeroed
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="damaged"):
        load_model(tmp_path / "vae", "vae")


@pytest.mark.parametrize(
    "option, message",
    [
        (["--cfg", "nan"], "finite number"),
        (["--cfg", "inf"], "finite number"),
        (["--lag", "nan"], "lag"),
        (["--steps", "0"], "at least 1"),
        (["-o", "out.avi"], "cannot write '.avi' files"),
    ],
)
def test_generate_refuses_bad_options_before_any_work(tmp_path, option, message):
    args = ["generate", "a red circle moves to the right", "-o", str(tmp_path / "x.mp4"), *option]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "x.mp4").exists()


def test_output_paths_are_checked_before_writing(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(VideoWriteError, match="which is a file"):
        check_output_path(tmp_path / "file" / "clip.mp4")
    (tmp_path / "folder.mp4").mkdir()
    with pytest.raises(VideoWriteError, match="is a folder"):
        check_output_path(tmp_path / "folder.mp4")


def test_concurrent_writers_of_one_path_leave_one_whole_video(tmp_path):
    out = tmp_path / "same.mp4"
    videos = [np.full((3, 6, 32, 32), v, np.uint8) for v in (40, 200)]
    errors = []

    def write(video):
        try:
            for _ in range(3):
                write_video(out, video, fps=8)
        except Exception as e:  # noqa: BLE001 (collected and asserted below)
            errors.append(e)

    threads = [threading.Thread(target=write, args=(v,)) for v in videos]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and probe(out).num_frames == 6
    assert not [p for p in tmp_path.iterdir() if p.name != "same.mp4"]  # no temporary left behind
