"""The fast paths give the same results as the plain ones: weights loaded without random
initialisation, bf16 sampling, torch.compile for sampling and training, the text's work done
once per sampling run; and start-up imports only what it runs."""

from dataclasses import replace

import pytest
import torch

from filmstrip.checkpoint import CheckpointError, build_with_weights, skipped_initialisation
from filmstrip.errors import InputError
from filmstrip.models.conditioning import Conditioning
from filmstrip.models.dit import VideoDiT, preset
from filmstrip.models.fsq import FSQ
from filmstrip.pipelines.denoise import denoise
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


def _text_model_and_levels():
    torch.manual_seed(0)
    dit = VideoDiT(preset("tiny", context_dim=64, text_refiner=1)).eval()
    for p in dit.parameters():  # a trained model's branches are open; a fresh one's are zero
        torch.nn.init.normal_(p, std=0.1)
    real = Conditioning(torch.randn(2, 5, 64), torch.tensor([[True] * 5, [True] * 3 + [False] * 2]))
    null = Conditioning(torch.zeros(2, 1, 64), torch.ones(2, 1, dtype=torch.bool))
    return dit, [null, real]


def _count_calls(module: torch.nn.Module, method: str) -> list[int]:
    calls = [0]
    original = getattr(module, method)

    def counted(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    setattr(module, method, counted)
    return calls


def test_a_sampling_run_does_the_text_work_once_with_the_same_result():
    """20 steps read one prompt: the text refiner and each block's cross-attention keys and
    values run once per sampling run (once per guidance batch), and the video is bit for bit
    what recomputing them every step gives."""
    dit, levels = _text_model_and_levels()
    x = torch.randn(2, dit.cfg.in_channels, 3, 8, 8)
    sched = torch.linspace(1, 0, 6)[:, None].expand(6, 3)
    refines = _count_calls(dit.text_refiner, "forward")
    kvs = [_count_calls(block.cross, "keys_values") for block in dit.blocks]
    kept = denoise(dit, x, sched, levels, [3.0])
    assert refines[0] == 1 and all(k[0] == 1 for k in kvs)

    def every_step(z, t, cond, **kwargs):
        return dit(z, t, replace(cond, memo=None), **kwargs)

    recomputed = denoise(every_step, x, sched, levels, [3.0])
    assert refines[0] == 1 + 5 and all(k[0] == 1 + 5 for k in kvs)
    assert torch.equal(kept, recomputed)


def test_the_text_work_is_never_kept_while_gradients_flow():
    """A kept tensor would carry the graph of an earlier step (and stale weights) into training."""
    dit, (_, real) = _text_model_and_levels()
    cond = replace(real, memo={})
    x, t = torch.randn(2, dit.cfg.in_channels, 3, 8, 8), torch.rand(2)
    refines = _count_calls(dit.text_refiner, "forward")
    for _ in range(2):
        dit(x, t, cond).square().mean().backward()
    assert refines[0] == 2 and cond.memo == {}
    with torch.no_grad():
        dit(x, t, cond), dit(x, t, cond)
    assert refines[0] == 3 and len(cond.memo) == 1 + len(dit.blocks)


def test_generate_imports_no_dataset_or_video_reader():
    """The datasets (and the decoder stack behind them) load on first use, not with
    `generate`'s helpers: the main job's start-up pays only for what it runs."""
    import subprocess
    import sys

    code = (
        "import sys; import filmstrip.cli.generate, filmstrip.pipelines.generate, filmstrip.io.writer; "
        "print(sorted(m for m in sys.modules if m.startswith('filmstrip.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(eval(out))
    assert "filmstrip.data.buckets" in loaded
    assert not loaded & {f"filmstrip.data.{name}" for name in ("shapes", "digits", "folder", "photos")}
    assert "filmstrip.io.reader" not in loaded
    # The names still resolve where users import them from.
    from filmstrip.data import ShapesDataset, build_dataset
    from filmstrip.io import read_video

    assert ShapesDataset.__module__ == "filmstrip.data.shapes" and callable(build_dataset)
    assert read_video.__module__ == "filmstrip.io.reader"
