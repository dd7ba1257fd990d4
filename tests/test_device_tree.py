"""scripts/device_tree.py: a checkout fitted to a device call's 64 MiB, and put back."""

import importlib.util
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
spec = importlib.util.spec_from_file_location("device_tree", ROOT / "scripts" / "device_tree.py")
device_tree = importlib.util.module_from_spec(spec)
spec.loader.exec_module(device_tree)


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the project's git checkout to clone")
def test_slim_leaves_the_unneeded_weights_behind_and_restore_puts_the_checkout_back(tmp_path):
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", "--local", str(ROOT), str(repo)], check=True)
    before = device_tree.traveling_bytes(repo, [])
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    left = device_tree.slim(repo, ["t2v", "vae3d"])
    assert "t2v_causal" in left and "t2v" not in left and "vae3d" not in left
    slim = device_tree.traveling_bytes(repo, [])
    assert slim < device_tree.LIMIT and slim < before  # the call fits (the whole tree is over 64 MiB)
    assert (repo / "filmstrip/weights/t2v_causal/model.safetensors").exists()  # still on disk
    with pytest.raises(SystemExit, match="already slim: run `restore` first"):
        device_tree.slim(repo, ["t2v"])
    device_tree.restore(repo)
    with pytest.raises(SystemExit, match="no shipped weights named nonesuch"):
        device_tree.slim(repo, ["nonesuch"])
    assert device_tree.traveling_bytes(repo, []) == before
    assert (
        subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
        == status
    )
    assert device_tree.BEGIN not in device_tree.exclude_file(repo).read_text()
