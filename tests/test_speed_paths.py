"""The fast paths give the same results as the plain ones: weights loaded without random
initialisation, bf16 sampling, torch.compile for sampling and training."""

import pytest
import torch

from filmstrip.checkpoint import CheckpointError, build_with_weights, skipped_initialisation
from filmstrip.errors import InputError
from filmstrip.models.dit import VideoDiT, preset
from filmstrip.models.fsq import FSQ
from filmstrip.pipelines.generate import GenerateConfig, generate, load_pipeline
from filmstrip.precision import use_bf16

CFG = GenerateConfig(frames=5, height=32, width=32, steps=3)


def test_build_with_weights_takes_the_state_and_skips_initialisation(tmp_path):
    torch.manual_seed(0)
    trained = VideoDiT(preset("tiny"))
    state = {k: torch.randn_like(v) for k, v in trained.state_dict().items()}
    model = build_with_weights(tmp_path, lambda: VideoDiT(preset("tiny")), state)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    # Weights of another model are refused with the tensor that does not fit.
    with pytest.raises(CheckpointError, match="do not fit the config"):
        build_with_weights(tmp_path, lambda: VideoDiT(preset("tiny", width=96)), state)


def test_build_with_weights_keeps_buffers_the_constructor_computes(tmp_path):
    fsq = build_with_weights(tmp_path, lambda: FSQ((8, 5, 5)), {})
    z = torch.randn(2, 3, 4)
    torch.testing.assert_close(fsq.from_codes(fsq.codes(z)), fsq(z))


def test_skipped_initialisation_is_undone_on_exit():
    with skipped_initialisation():
        inside = torch.nn.init.normal_(torch.zeros(100))
    assert torch.count_nonzero(inside) == 0
    assert torch.count_nonzero(torch.nn.init.normal_(torch.zeros(100))) == 100


def test_precision_choices():
    cpu = torch.device("cpu")
    assert not use_bf16("fp32", cpu) and use_bf16("bf16", cpu)
    assert use_bf16("auto", torch.device("meta")) is True  # not a CPU: bf16 is fast
    with pytest.raises(InputError, match="precision must be one of"):
        use_bf16("fp16", cpu)


def test_bf16_sampling_stays_close_to_float32(tiny_bundle):
    fp32 = generate(load_pipeline(tiny_bundle), ["a red circle moves up"], CFG)
    pipe = load_pipeline(tiny_bundle, precision="bf16")
    assert pipe.bf16 and next(pipe.dit.parameters()).dtype == torch.float32
    bf16 = generate(pipe, ["a red circle moves up"], CFG)
    assert bf16.dtype == torch.float32
    assert 0 < (bf16 - fp32).abs().mean() < 0.02


@pytest.mark.slow
def test_compiled_sampling_equals_eager(tiny_bundle):
    eager = generate(load_pipeline(tiny_bundle), ["a red circle moves up"], CFG)
    compiled = generate(load_pipeline(tiny_bundle, compile=True), ["a red circle moves up"], CFG)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_compiled_training_follows_eager(tmp_path):
    from filmstrip.data import ShapesConfig, ShapesDataset, collate_clips
    from filmstrip.models.vae import preset as vae_preset
    from filmstrip.train.trainer import TrainConfig, Trainer
    from filmstrip.train.vae_task import VAELossConfig, VAETask

    def run(compile: bool, where):
        torch.manual_seed(0)
        task = VAETask(vae_preset("tiny"), VAELossConfig())
        data = ShapesDataset(ShapesConfig(num_clips=4, num_frames=5, height=32, width=32))
        cfg = TrainConfig(
            steps=3, batch_size=2, num_workers=0, sample_every=0, ckpt_every=0, bf16=False, compile=compile
        )
        trainer = Trainer(cfg, task, data, where, collate=collate_clips)
        return trainer.fit()["loss"]

    torch.testing.assert_close(run(True, tmp_path / "c"), run(False, tmp_path / "e"), rtol=1e-3, atol=1e-5)
