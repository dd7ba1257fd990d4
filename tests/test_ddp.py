"""Data-parallel training through torchrun: two CPU processes (gloo) stay in sync."""

import json
import os
import subprocess
import sys
from pathlib import Path


def test_two_processes_stay_in_sync(tmp_path):
    worker = Path(__file__).parent / "ddp_worker.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent.parent)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(worker),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 for r in ranks)
    # Each rank trained on its own half of every batch ...
    assert ranks[0]["batch"] != ranks[1]["batch"]
    # ... yet both end with identical weights and EMA, which moved from the start.
    assert ranks[0]["after"] == ranks[1]["after"] != ranks[0]["before"]
    assert ranks[0]["ema"] == ranks[1]["ema"]
    # Also when a step runs two forward passes (the DiT's image and video groups).
    assert ranks[0]["dit_after"] == ranks[1]["dit_after"] != ranks[0]["dit_before"]
    # The discriminator of an adversarial VAE under accumulation: in sync, one step per step.
    assert ranks[0]["disc"] == ranks[1]["disc"] and ranks[0]["gan_model"] == ranks[1]["gan_model"]
    assert ranks[0]["disc_steps"] == ranks[1]["disc_steps"] == [3]
    # A latent cache is built by both ranks together: 5 shards, 3 and 2, whole for each.
    assert sorted(r["shards_encoded"] for r in ranks) == [2, 3] and all(r["cache_clips"] == 10 for r in ranks)
    # Only rank 0 writes the run folder.
    assert (tmp_path / "run" / "model" / "model.safetensors").exists()


def test_the_other_ranks_of_a_torchrun_launch_stay_quiet(tmp_path, monkeypatch, capsys):
    from click.testing import CliRunner

    from filmstrip.cli import echo_main, main

    args = ["generate", "a cat runs to the right", "-o", str(tmp_path / "a.mp4"), "--steps", "1"]
    assert "Warning: the model never read 'cat'" in CliRunner().invoke(main, args).output
    monkeypatch.setenv("RANK", "1")  # as torchrun sets it for the second process
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0 and "Warning" not in result.output
    echo_main("model: runs/x")
    assert capsys.readouterr().out == ""
    # And `--run-dir` is `--run`, which torchrun's own parser takes for its `--run-path`.
    monkeypatch.delenv("RANK")
    args = ["train", "t2v", "--run-dir", str(tmp_path / "r"), "--steps", "0", "--clips", "2", "--frames", "5"]
    result = CliRunner().invoke(main, [*args, "--size", "32"])
    assert result.exit_code == 0 and (tmp_path / "r" / "latents" / "meta.json").exists(), result.output
