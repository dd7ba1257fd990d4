"""Files and folders are written whole or not at all, with the permissions `open` and `mkdir`
would give them (the private ones of `mkstemp` / `mkdtemp` once made every saved model and
video unreadable to anyone else on the machine)."""

import os
import stat

import numpy as np
import pytest
import torch

from filmstrip.atomic import atomic_directory, atomic_path, write_text_atomic
from filmstrip.checkpoint import save_model
from filmstrip.io import write_video


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_written_file_replaces_the_old_one_with_ordinary_permissions(tmp_path, umask_022):
    target = tmp_path / "a.txt"
    write_text_atomic(target, "old")
    write_text_atomic(target, "new")
    assert target.read_text() == "new" and mode(target) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    os.umask(0o077)
    write_text_atomic(target, "private")
    assert mode(target) == 0o600


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_a_folder_takes_the_old_ones_place_whole_or_not_at_all(tmp_path, umask_022):
    target = tmp_path / "model"
    with atomic_directory(target) as tmp:
        (tmp / "w").write_text("1")
    assert mode(target) == 0o755 and (target / "w").read_text() == "1"
    with atomic_directory(target) as tmp:
        (tmp / "v").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["v"]
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "u").write_text("3")
        raise RuntimeError("killed")
    assert sorted(p.name for p in target.iterdir()) == ["v"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_saved_models_and_videos_are_readable_by_others(tmp_path, umask_022):
    out = save_model(tmp_path / "m", "dit", {"width": 1}, {"w": torch.zeros(2)})
    assert mode(out) == 0o755 and mode(out / "model.safetensors") == 0o644
    assert mode(out / "config.json") == 0o644
    video = write_video(tmp_path / "v.mp4", np.zeros((3, 2, 8, 8), np.uint8), fps=8)
    assert mode(video) == 0o644
