"""Training an autoencoder: overfitting, checkpoints, exact resume, adversarial term, errors."""

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from filmstrip.checkpoint import CheckpointError, load_model, save_model
from filmstrip.data import ShapesConfig, ShapesDataset, collate_clips
from filmstrip.eval.metrics import psnr
from filmstrip.models.vae import VideoVAE, load_vae, preset
from filmstrip.train.trainer import StepBatchSampler, TrainConfig, Trainer, latest_checkpoint
from filmstrip.train.vae_task import VAELossConfig, VAETask


def shapes(num_frames=5, size=16, n=32):
    return ShapesDataset(
        ShapesConfig(num_frames=num_frames, height=size, width=size, num_clips=n, background="plain")
    )


def test_tiny_model_overfits_one_clip():
    torch.manual_seed(0)
    x = shapes(9, 16)[0]["video"].unsqueeze(0)  # a 2x2 latent: 4x cheaper a step than 32 px
    task = VAETask(
        preset("tiny", channels=(16, 32, 32), latent_channels=16, groups=8), VAELossConfig(image_every=0)
    )
    model = task.model
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    # fp32: on a CPU without native bf16 (AVX2 only) autocast made this test 3x slower
    # (363 s against 114 s); the trainer's bf16 path is covered by the tests below.
    for step in range(500):  # measured: 34.3 dB here (19.5 dB at step 100)
        loss, _ = task.loss(model, {"video": x}, step, gen)
        loss.backward()
        opt.step()
        opt.zero_grad()
    with torch.no_grad():
        recon = model.decode(model.encode(x), 9).clamp(-1, 1)
    assert float(psnr(recon, x)) > 30.0


def make_trainer(run_dir, steps=4, gan=0.0):
    torch.manual_seed(0)
    task = VAETask(
        preset("tiny"),
        VAELossConfig(gan=gan, gan_start=1, image_every=2),
        preview=shapes()[0]["video"].unsqueeze(0),
    )
    cfg = TrainConfig(
        steps=steps,
        batch_size=2,
        lr=1e-3,
        warmup=2,
        num_workers=0,
        ckpt_every=2,
        sample_every=0,
        log_every=1,
        ema_decay=0.9,
    )
    return Trainer(cfg, task, shapes(), run_dir, collate=collate_clips)


@pytest.mark.parametrize("gan", [0.0, 0.5])
def test_resume_equals_uninterrupted(tmp_path, gan):
    straight = make_trainer(tmp_path / "a", gan=gan)
    straight.fit()
    first = make_trainer(tmp_path / "b", gan=gan)
    first.fit(2)  # checkpoint at step 2
    resumed = make_trainer(tmp_path / "b", gan=gan)
    assert resumed.resume() and resumed.step == 2
    resumed.fit()
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(straight.ema.state_dict().values(), resumed.ema.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    if gan:
        for a, b in zip(
            straight.task.disc.state_dict().values(), resumed.task.disc.state_dict().values(), strict=True
        ):
            assert torch.equal(a, b)
    # The run folder holds what the docs promise.
    log = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert latest_checkpoint(tmp_path / "a").name == "step_0000004"
    assert (tmp_path / "a" / "model" / "model.safetensors").exists()


def test_sigterm_saves_a_checkpoint_that_resumes(tmp_path):
    """A stop from outside (SIGTERM, as a scheduler or `kill` sends) mid-run loses nothing:
    the trainer saves the step it reached, re-raises, and a new trainer resumes from it."""
    trainer = make_trainer(tmp_path, steps=6)
    loss = trainer.task.loss

    def loss_then_stop(model, batch, step, generator, aux):
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return loss(model, batch, step, generator, aux)

    trainer.task.loss = loss_then_stop
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is only set during fit
    # The signal came during step 3 (0-based): the loop finishes that step, then saves.
    assert latest_checkpoint(tmp_path).name == "step_0000004"
    resumed = make_trainer(tmp_path, steps=6)
    assert resumed.resume() and resumed.step == 4
    resumed.fit()
    assert resumed.step == 6


def test_adversarial_term_trains_the_discriminator_once_per_optimiser_step(tmp_path):
    """The discriminator is an auxiliary network of the task: its loss reaches only its own
    weights, the autoencoder's adversarial term does not reach it, and under accumulation its
    optimiser steps once per optimiser step, not once per micro-batch."""
    batch = {"video": torch.stack([shapes()[i]["video"] for i in range(2)])}
    disc_grads = []
    for weight in (0.1, 10.0):  # the generator term's weight must not change the disc's gradient
        torch.manual_seed(0)
        task = VAETask(preset("tiny"), VAELossConfig(gan=weight, gan_start=0, image_every=0))
        loss, logs = task.loss(task.model, batch, 0, torch.Generator().manual_seed(0))
        assert "d_loss" in logs and "g_loss" in logs and torch.isfinite(loss)
        loss.backward()
        disc_grads.append([p.grad.clone() for p in task.disc.parameters()])
    assert all(g.abs().sum() > 0 for g in disc_grads[0])
    for a, b in zip(*disc_grads, strict=True):
        torch.testing.assert_close(a, b)
    # Through the trainer, with two micro-batches per step: 3 steps -> 3 disc updates.
    task.disc.zero_grad(set_to_none=True)
    task.model.zero_grad(set_to_none=True)
    before = [p.clone() for p in task.disc.parameters()]
    cfg = TrainConfig(
        steps=3, batch_size=4, accumulate=2, lr=1e-3, warmup=1, num_workers=0, ckpt_every=0, sample_every=0
    )
    trainer = Trainer(cfg, task, shapes(), tmp_path, collate=collate_clips)
    trainer.fit()
    assert any(not torch.equal(a, b) for a, b in zip(before, task.disc.parameters(), strict=True))
    steps = {int(s["step"]) for s in trainer.aux_opt["disc"].state_dict()["state"].values()}
    assert steps == {3}


def test_exported_model_loads_and_reconstructs_identically(tmp_path):
    trainer = make_trainer(tmp_path / "run", steps=2)
    trainer.fit()
    loaded = load_vae(tmp_path / "run" / "model")
    x = shapes()[1]["video"].unsqueeze(0)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(x), trainer.ema.model.encode(x), rtol=0, atol=0)
    config, _, meta = load_model(tmp_path / "run" / "model", "vae")
    assert meta["step"] == 2 and "preview" in meta
    assert config["latent_scale"] > 0
    # Shipping in float16 halves the file and barely moves the output.
    save_model(tmp_path / "half", "vae", config, loaded.state_dict(), dtype=torch.float16)
    half = load_vae(tmp_path / "half")
    with torch.no_grad():
        torch.testing.assert_close(half.encode(x), loaded.encode(x), rtol=0, atol=5e-3)


def test_checkpoint_errors_name_the_problem(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_vae(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        load_vae(tmp_path / "empty")
    model = VideoVAE(preset("tiny"))
    save_model(tmp_path / "dit", "dit", {"depth": 2}, model.state_dict())
    with pytest.raises(CheckpointError, match="'dit' checkpoint, but a 'vae' checkpoint is needed"):
        load_vae(tmp_path / "dit")
    (tmp_path / "dit" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="damaged"):  # the recorded checksum catches it
        load_model(tmp_path / "dit", "dit")
    info = json.loads((tmp_path / "dit" / "config.json").read_text())
    del info["sha256"]  # as checkpoints written before checksums were recorded
    (tmp_path / "dit" / "config.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match="unreadable weights"):
        load_model(tmp_path / "dit", "dit")


def test_step_batches_are_a_function_of_step_and_split_across_ranks():
    full = StepBatchSampler(10, 4, seed=3, start_step=0)
    later = StepBatchSampler(10, 4, seed=3, start_step=5)
    it = iter(full)
    batches = [next(it) for _ in range(8)]
    assert next(iter(later)) == batches[5]
    ranks = [StepBatchSampler(10, 4, seed=3, start_step=0, rank=r, world=2).batch(1) for r in range(2)]
    assert ranks[0] + ranks[1] == batches[1]
    # Every epoch is a permutation: 10 clips, 4 per batch -> the first 10 draws are distinct.
    assert len(set(sum(batches, [])[:10])) == 10
    # The documented order: epochs seeded by (seed, epoch), concatenated, cut into batches.
    epochs = [torch.randperm(10, generator=torch.Generator().manual_seed(3 * 100_003 + e)) for e in range(4)]
    assert sum(batches, []) == torch.cat(epochs)[:32].tolist()


def test_loss_is_the_documented_weighted_sum():
    torch.manual_seed(0)
    x = torch.stack([shapes()[i]["video"] for i in range(2)])
    weights = dict(mse=1.0, l1=0.3, ssim=0.2, kl=0.01, temporal=0.5)
    task = VAETask(preset("tiny"), VAELossConfig(image_every=0, **weights))
    loss, logs = task.loss(task.model, {"video": x}, 0, torch.Generator().manual_seed(0))
    expected = (
        logs["mse"] + 0.3 * logs["l1"] + 0.2 * (1 - logs["ssim"]) + 0.01 * logs["kl"] + 0.5 * logs["temporal"]
    )
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # The MSE and temporal terms are those of the reconstruction the loss saw.
    with torch.no_grad():
        recon, _ = task.model(x, generator=torch.Generator().manual_seed(0))
    assert logs["mse"] == pytest.approx((recon - x).square().mean().item(), rel=1e-5)
    change = (recon[:, :, 1:] - recon[:, :, :-1]) - (x[:, :, 1:] - x[:, :, :-1])
    assert logs["temporal"] == pytest.approx(change.abs().mean().item(), rel=1e-5)


def test_perceptual_term_is_added_and_reaches_the_decoder():
    torch.manual_seed(0)
    x = torch.stack([shapes(5, 32)[i]["video"] for i in range(2)])
    weights = dict(mse=1.0, l1=0.0, ssim=0.0, kl=0.0)
    plain = VAETask(preset("tiny"), VAELossConfig(image_every=0, **weights))
    task = VAETask(preset("tiny"), VAELossConfig(image_every=0, lpips=0.5, lpips_frames=2, **weights))
    task.model.load_state_dict(plain.model.state_dict())
    base, _ = plain.loss(plain.model, {"video": x}, 0, torch.Generator().manual_seed(0))
    loss, logs = task.loss(task.model, {"video": x}, 0, torch.Generator().manual_seed(0))
    assert logs["lpips"] > 0
    assert loss.item() == pytest.approx(base.item() + 0.5 * logs["lpips"], rel=1e-5)
    loss.backward()
    grad = task.model.decoder.conv_out.conv.weight.grad
    base.backward()
    assert not torch.allclose(grad, plain.model.decoder.conv_out.conv.weight.grad)
    assert not any(k.startswith("_lpips") for k in task.model.state_dict())  # never saved with the model


def test_a_frozen_encoder_keeps_the_latent_space(tmp_path):
    x = torch.stack([shapes()[i]["video"] for i in range(2)])
    task = VAETask(preset("tiny"), VAELossConfig(image_every=0, temporal=1.0), preview=x, freeze_encoder=True)
    encoder = {k: v.clone() for k, v in task.model.encoder.state_dict().items()}
    decoder = {k: v.clone() for k, v in task.model.decoder.state_dict().items()}
    cfg = TrainConfig(steps=2, batch_size=2, lr=1e-3, warmup=0, log_every=1, sample_every=0, ckpt_every=0)
    Trainer(cfg, task, shapes(), tmp_path / "run", collate=collate_clips).fit()
    after = task.model.state_dict()
    assert all(torch.equal(v, after[f"encoder.{k}"]) for k, v in encoder.items())
    assert any(not torch.equal(v, after[f"decoder.{k}"]) for k, v in decoder.items())
    # The export keeps the latent normalisation the diffusion models were trained with.
    config, _ = task.export(task.model)
    assert (config["latent_shift"], config["latent_scale"]) == (task.cfg.latent_shift, task.cfg.latent_scale)


def test_bf16_falls_back_to_fp32_where_it_is_emulated(tmp_path, monkeypatch):
    """On a CPU without native bf16 the trainer says so and trains in fp32; elsewhere it keeps
    the bf16 that was asked for."""
    import filmstrip.train.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "bf16_is_fast", lambda device: False)
    with pytest.warns(UserWarning, match="no native bf16"):
        slow = make_trainer(tmp_path / "a")
    assert slow.cfg.bf16 and not slow.bf16
    monkeypatch.setattr(trainer_module, "bf16_is_fast", lambda device: True)
    assert make_trainer(tmp_path / "b").bf16
    assert isinstance(trainer_module.bf16_is_fast(torch.device("cpu")), bool)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_inside_the_optimiser_step_saves_a_whole_step_and_resumes_exactly(tmp_path, signum):
    """Ctrl-C or SIGTERM landing in the middle of the optimiser step: the step completes, every
    parameter has the same number of Adam steps, and the resumed run equals an uninterrupted
    one bit for bit. The log holds each step once."""
    straight = make_trainer(tmp_path / "a", steps=5)
    straight.fit()
    first = make_trainer(tmp_path / "b", steps=5)
    fired = []

    def mid_step(optimizer, args, kwargs):
        if len(fired) == 0 and first.step == 2:
            fired.append(1)
            os.kill(os.getpid(), signum)

    first.opt.register_step_pre_hook(mid_step)
    with pytest.raises(KeyboardInterrupt):
        first.fit()
    state = first.opt.state_dict()["state"]
    assert {int(v["step"]) for v in state.values()} == {3}
    resumed = make_trainer(tmp_path / "b", steps=5)
    assert resumed.resume() and resumed.step == 3
    resumed.fit()
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 5


def test_from_scratch_runs_are_reproducible_and_leftovers_are_cleaned(tmp_path):
    """Two runs of one recipe give identical weights (initialisation is seeded from the run's
    seed); leftovers of an interrupted save are removed on start; a damaged newest checkpoint
    falls back to the one before; a deleted model folder of a finished run is written again."""
    from filmstrip.train.recipes import VAERecipe, train_vae

    def recipe(run):
        cfg = TrainConfig(steps=4, batch_size=2, warmup=1, num_workers=0, ckpt_every=2, sample_every=0)
        return VAERecipe(run=str(run), data=("shapes",), preset="tiny", frames=5, size=16, train=cfg)

    torch.manual_seed(123)  # global state must not matter
    a = train_vae(recipe(tmp_path / "a"), log=lambda _: None)
    torch.manual_seed(456)
    b = train_vae(recipe(tmp_path / "b"), log=lambda _: None)
    _, wa, _ = load_model(a, "vae")
    _, wb, _ = load_model(b, "vae")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)

    run = tmp_path / "a"
    (run / "checkpoints" / ".tmp_abc").mkdir()
    (run / "checkpoints" / "step_0000009").mkdir()  # a deletion cut short: no state.json
    (run / ".model.xyz").mkdir()
    newest = run / "checkpoints" / "step_0000004" / "optimizer.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])  # truncated
    import shutil

    shutil.rmtree(run / "model")
    trainer = make_trainer(run, steps=4)
    assert not (run / "checkpoints" / ".tmp_abc").exists() and not (run / ".model.xyz").exists()
    with pytest.warns(UserWarning, match="damaged"):
        assert trainer.resume() and trainer.step == 2
    # A finished run whose model folder was deleted: running it again writes the model again.
    shutil.rmtree(tmp_path / "b" / "model")
    finished = make_trainer(tmp_path / "b", steps=4)
    assert finished.resume() and finished.step == 4
    finished.fit()
    assert (tmp_path / "b" / "model" / "config.json").exists()


def test_a_second_trainer_process_on_one_run_folder_is_refused(tmp_path):
    import subprocess
    import sys

    make_trainer(tmp_path, steps=1)  # this process now holds the run folder
    code = (
        "import sys; sys.path.insert(0, 'tests'); from test_train_vae import make_trainer; "
        f"make_trainer({str(tmp_path)!r})"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=str(Path(__file__).parent.parent)
    )
    assert other.returncode != 0 and "another trainer is using this run folder" in other.stderr
