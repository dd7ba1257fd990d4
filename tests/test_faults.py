"""Bad input and damaged files get one sentence, never a silent wrong result."""

import shutil
import threading
from pathlib import Path

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
    with pytest.raises(VideoWriteError, match=r"the name says no format; end it with one of \.mp4"):
        check_output_path(tmp_path / "clip")
    with pytest.raises(VideoWriteError, match=r"cannot write '\.avi' files"):
        check_output_path(tmp_path / "clip.avi")


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


def test_probe_reports_every_file(tmp_path):
    good = write_video(tmp_path / "good.mp4", np.zeros((3, 4, 16, 16), np.uint8), fps=8)
    (tmp_path / "bad.mp4").write_bytes(b"not a video at all")
    result = CliRunner().invoke(main, ["data", "probe", str(tmp_path / "bad.mp4"), str(good)])
    assert result.exit_code == 1 and "bad.mp4: UNREADABLE" in result.output
    assert "good.mp4: 16x16, 4 frames" in result.output and "1 of 2 files could not be read" in result.output


def test_a_caption_link_out_of_the_folder_is_not_read(tmp_path):
    from filmstrip.data import FolderConfig, FolderDataset

    root = tmp_path / "videos"
    root.mkdir()
    for name in ("a", "b"):
        write_video(root / f"{name}.mp4", np.zeros((3, 12, 32, 32), np.uint8), fps=8)
    (tmp_path / "secret").write_text("root:x:0:0")
    (root / "a.txt").symlink_to(tmp_path / "secret")
    (root / "b.txt").write_text("a fine caption")
    with pytest.warns(UserWarning, match="links outside"):
        ds = FolderDataset(FolderConfig(root=str(root), num_frames=4, area=32 * 32))
    assert [it.caption for it in ds.items] == ["a fine caption"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--size", "4096"], "GiB of memory"),
        (["--frames", "100001"], "GiB of memory"),
        (["--seed", str(2**40)], "seed must be in"),
    ],
)
def test_requests_that_cannot_fit_are_refused_with_the_estimate(tmp_path, args, message):
    result = CliRunner().invoke(main, ["generate", "a red circle", "-o", str(tmp_path / "x.mp4"), *args])
    assert result.exit_code == 1 and message in result.output, result.output


def test_reading_at_an_impossible_size_is_refused(tmp_path):
    from filmstrip.io import VideoReadError, read_video

    path = write_video(tmp_path / "v.mp4", np.zeros((3, 4, 16, 16), np.uint8), fps=8)
    with pytest.raises(VideoReadError, match="GiB of memory"):
        read_video(path, size=100000)


def test_bad_counts_are_refused(tmp_path):
    result = CliRunner().invoke(
        main, ["data", "preview", "shapes", "-o", str(tmp_path / "p.mp4"), "--columns", "0"]
    )
    assert result.exit_code == 2 and "--columns" in result.output
    result = CliRunner().invoke(main, ["train", "t2v", "--run", str(tmp_path / "r"), "--clips", "0"])
    assert result.exit_code == 1 and "data.clips must be at least 1" in result.output
    result = CliRunner().invoke(main, ["vae", "train", "--run", str(tmp_path / "r"), "--steps", "-5"])
    assert result.exit_code == 1 and "train.steps = -5 is out of range" in result.output


def test_weights_of_another_model_are_named(tmp_path):
    import json

    shutil.copytree(BUNDLED_DIR / "vae3d", tmp_path / "mixed")
    shutil.copy(BUNDLED_DIR / "vae2d" / "model.safetensors", tmp_path / "mixed" / "model.safetensors")
    info = json.loads((tmp_path / "mixed" / "config.json").read_text())
    del info["sha256"]  # the checksum would catch the swap first
    (tmp_path / "mixed" / "config.json").write_text(json.dumps(info))
    from filmstrip.models.vae import load_vae

    with pytest.raises(CheckpointError, match="do not fit the config"):
        load_vae(tmp_path / "mixed")


def test_latents_decode_only_with_their_autoencoder(tmp_path):
    clip = write_video(tmp_path / "c.mp4", np.zeros((3, 5, 32, 32), np.uint8), fps=8)
    z = tmp_path / "c.safetensors"
    assert CliRunner().invoke(main, ["vae", "encode", str(clip), "-o", str(z)]).exit_code == 0
    other = CliRunner().invoke(main, ["vae", "decode", str(z), "-o", str(tmp_path / "d.mp4"), "-c", "vae2d"])
    assert other.exit_code == 1 and "made by another autoencoder" in other.output


def test_a_damaged_cache_shard_is_named_and_rebuilt(tmp_path):
    import torch

    from filmstrip.data import ShapesConfig, ShapesDataset
    from filmstrip.data.latents import LatentDataset, build_latent_cache
    from filmstrip.models.vae import VideoVAE
    from filmstrip.models.vae import preset as vae_preset
    from filmstrip.text.encoder import TextEncoder

    torch.manual_seed(0)
    vae, text = VideoVAE(vae_preset("tiny", latent_channels=4)).eval(), TextEncoder()
    ds = ShapesDataset(ShapesConfig(num_frames=5, height=32, width=32, num_clips=4))
    root = build_latent_cache(ds, vae, text, tmp_path / "cache", num_clips=4, shard_size=2)
    shard = root / "shard_00001.safetensors"
    shard.write_bytes(shard.read_bytes()[:200])
    with pytest.raises(ValueError, match="shard_00001.safetensors is damaged"):
        LatentDataset(root)
    build_latent_cache(ds, vae, text, root, num_clips=4, shard_size=2)
    assert len(LatentDataset(root)) == 4 and LatentDataset(root)[3]["latents"].shape[0] == 4


def test_resuming_with_another_model_or_a_full_disk_is_one_sentence(tmp_path, monkeypatch):
    args = ["vae", "train", "--preset", "tiny", "--data", "shapes", "--frames", "5", "--size", "16",
            "--batch-size", "2", "--steps", "2", "--sample-every", "0", "--workers", "0", "--run", str(tmp_path / "r")]  # fmt: skip
    assert CliRunner().invoke(main, args).exit_code == 0
    other = CliRunner().invoke(
        main, [*args[:-2], "--steps", "3", "--preset", "tiny2d", "--run", str(tmp_path / "r")]
    )
    assert other.exit_code == 1 and "made with another model configuration" in other.output, other.output

    import filmstrip.train.trainer as trainer_module

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(trainer_module, "save_tensors_atomic", full)
    result = CliRunner().invoke(main, [*args[:-2], "--steps", "3", "--run", str(tmp_path / "r")])
    assert result.exit_code == 1 and "No space left on device" in result.output and "resume" in result.output
    assert not list((tmp_path / "r" / "checkpoints").glob(".tmp_*"))


@pytest.mark.parametrize(
    "section, value, message",
    [
        ("dit", None, "'dit' is missing or not a table"),  # None: the section is removed
        ("dit", [1, 2], "'dit' is missing or not a table"),
        ("dit", {"depth": 2.5}, "dit.depth: expected an integer"),
        ("dit", {"width": "wide"}, "dit.width: expected an integer"),
        ("dit", {"colour": 1}, "unknown setting 'dit.colour'"),
        ("spec", {"latent_scale": 0}, "latent_scale must be a positive number"),
    ],
)
def test_a_bad_model_config_names_the_field(tmp_path, section, value, message):
    import json

    from filmstrip.pipelines.generate import load_pipeline

    shutil.copytree(BUNDLED_DIR / "t2v", tmp_path / "m")
    info = json.loads((tmp_path / "m" / "config.json").read_text())
    config = info["config"]
    if value is None:
        del config[section]
    elif isinstance(value, dict):
        config[section] = {**config[section], **value}
    else:
        config[section] = value
    (tmp_path / "m" / "config.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match=message):
        load_pipeline(tmp_path / "m")


def test_a_second_signal_during_the_save_lets_it_finish(tmp_path, monkeypatch):
    """Ctrl-C, then Ctrl-C again while the checkpoint is being written: the save completes (a
    third signal would abort it)."""
    import os
    import signal
    import sys

    import filmstrip.train.trainer as trainer_module
    from filmstrip.train.trainer import latest_checkpoint

    sys.path.insert(0, str(Path(__file__).parent))
    from test_train_vae import make_trainer

    trainer = make_trainer(tmp_path, steps=6)
    write = trainer_module.save_tensors_atomic
    sent = []

    def write_then_signal(*args, **kwargs):
        if trainer.step == 3 and not sent:
            sent.append(1)
            os.kill(os.getpid(), signal.SIGINT)  # the second signal, mid-save
        return write(*args, **kwargs)

    loss = trainer.task.loss

    def stop_at_three(model, batch, step, generator, aux):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # the first signal
        return loss(model, batch, step, generator, aux)

    trainer.task.loss = stop_at_three
    monkeypatch.setattr(trainer_module, "save_tensors_atomic", write_then_signal)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert sent and latest_checkpoint(tmp_path).name == "step_0000003"
    assert make_trainer(tmp_path, steps=6).resume()


def test_a_step_with_non_finite_gradients_is_skipped_and_a_run_of_them_stops_training(tmp_path):
    """One bad batch leaves the weights as they were and training goes on; ten in a row stop
    the run with one sentence. A stop request is honoured on a skipped step too."""
    import os
    import signal
    import sys

    import torch

    from filmstrip.errors import TrainingError

    sys.path.insert(0, str(Path(__file__).parent))
    from test_train_vae import make_trainer

    trainer = make_trainer(tmp_path / "one", steps=4)
    loss, seen = trainer.task.loss, {}

    def nan_at_step_1(model, batch, step, generator, aux):
        seen[step] = [p.detach().clone() for p in trainer.model.parameters()]  # the weights it starts from
        value, logs = loss(model, batch, step, generator, aux)
        return (value * float("nan") if step == 1 else value), logs

    trainer.task.loss = nan_at_step_1
    trainer.fit()
    assert trainer.step == 4 and sorted(seen) == [0, 1, 2, 3]
    assert all(torch.equal(a, b) for a, b in zip(seen[1], seen[2], strict=True))  # step 1 changed nothing
    assert not all(torch.equal(a, b) for a, b in zip(seen[2], seen[3], strict=True))  # step 2 learned
    log = (tmp_path / "one" / "log.jsonl").read_text()
    assert log.count("non-finite gradients") == 1

    always = make_trainer(tmp_path / "always", steps=20)
    always.task.loss = lambda *a: (loss(*a)[0] * float("nan"), {})
    with pytest.raises(TrainingError, match="non-finite gradients 10 times in a row"):
        always.fit()
    assert always.step == 9

    stopped = make_trainer(tmp_path / "stopped", steps=20)

    def nan_and_stop(model, batch, step, generator, aux):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return loss(model, batch, step, generator, aux)[0] * float("nan"), {}

    stopped.task.loss = nan_and_stop
    with pytest.raises(KeyboardInterrupt):
        stopped.fit()
    assert stopped.step == 3
    assert torch.isfinite(torch.cat([p.flatten() for p in stopped.model.parameters()])).all()
