"""ControlNet (models/controlnet.py): an exact no-op when new and at scale 0, a branch that
reads the maps once opened, structure maps that match the pixels, training that touches
only the branch, and clear errors."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from filmstrip.cli import main
from filmstrip.data import ShapesConfig, ShapesDataset
from filmstrip.data.shapes import truth_masks
from filmstrip.data.structure import edge_maps
from filmstrip.errors import InputError
from filmstrip.eval.structure import mask_iou
from filmstrip.io import write_video
from filmstrip.models.conditioning import Conditioning
from filmstrip.models.controlnet import (
    ControlledDiT,
    ControlNet,
    ControlNetConfig,
    load_controlnet,
    save_controlnet,
)
from filmstrip.models.dit import VideoDiT
from filmstrip.models.dit import preset as dit_preset
from filmstrip.pipelines import generate as pipelines_generate
from filmstrip.pipelines.generate import CONTROL_TEXT_SCALE, GenerateConfig, generate, load_pipeline


def tiny_dit(seed=0, **overrides) -> VideoDiT:
    torch.manual_seed(seed)
    model = VideoDiT(dit_preset("tiny", **{"in_channels": 4, "context_dim": 32, **overrides})).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def inputs(maps_frames=9, seed=1):
    """Latents of a 9-frame 32 x 32 clip (3 latent frames of 4 x 4) and maps of its frames."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(2, 4, 3, 4, 4, generator=g, dtype=torch.float64)
    t = torch.rand(2, 3, generator=g, dtype=torch.float64)
    text = torch.randn(2, 5, 32, generator=g, dtype=torch.float64)
    maps = torch.rand(2, 1, maps_frames, 32, 32, generator=g, dtype=torch.float64)
    return z, t, Conditioning(text, torch.ones(2, 5, dtype=torch.bool)), maps


def opened(net: ControlNet) -> ControlNet:
    with torch.no_grad():
        for layer in (net.hint, *net.outs):
            layer.weight.normal_(0, 0.1)
    return net


def test_a_new_controlnet_is_an_exact_no_op_and_scale_zero_is_the_base():
    dit = tiny_dit()
    z, t, cond, maps = inputs()
    base = dit(z, t, cond)
    net = ControlNet.from_dit(dit, ControlNetConfig(depth=2))
    with_maps = Conditioning(cond.context, cond.context_mask, control=maps)
    assert torch.equal(ControlledDiT(dit, net)(z, t, with_maps), base)
    opened(net)
    steered = ControlledDiT(dit, net)(z, t, with_maps)
    assert not torch.allclose(steered, base)
    assert torch.equal(ControlledDiT(dit, net, scale=0.0)(z, t, with_maps), base)
    # Other maps, another output: the branch reads them.
    other = Conditioning(cond.context, cond.context_mask, control=1 - maps)
    assert not torch.allclose(ControlledDiT(dit, net)(z, t, other), steered)
    # Without maps the wrapper is the DiT; a DiT alone refuses maps.
    assert torch.equal(ControlledDiT(dit, net)(z, t, cond), base)
    with pytest.raises(InputError, match="need a ControlNet"):
        dit(z, t, with_maps)


def test_the_branch_starts_as_the_dits_first_blocks_and_checks_its_maps():
    dit = tiny_dit()
    net = ControlNet.from_dit(dit, ControlNetConfig(depth=2))
    for mine, theirs in zip(net.blocks, dit.blocks, strict=True):
        assert all(
            torch.equal(a, b)
            for a, b in zip(mine.state_dict().values(), theirs.state_dict().values(), strict=True)
        )
    z, t, cond, _ = inputs()
    net = opened(net)
    for bad, message in (
        (torch.rand(2, 1, 8, 32, 32), "1 \\+ 4 n frames"),
        (torch.rand(2, 1, 9, 16, 16), "size"),
    ):
        with pytest.raises(InputError, match=message):
            ControlledDiT(dit, net)(z, t, Conditioning(cond.context, cond.context_mask, control=bad.double()))
    with pytest.raises(InputError, match="depth 3 on a DiT of depth 2"):
        ControlNet(dit.cfg, ControlNetConfig(depth=3))


def test_the_map_encoder_starts_as_a_mean_over_each_group_and_can_tell_its_order():
    """The ordered fold (the default) starts as the mean of a latent frame's pixel frames,
    frame 0 a group of its own; unlike the mean, it can learn where in the group a shape was."""
    dit = tiny_dit()
    ordered = ControlNet(dit.cfg, ControlNetConfig(depth=2)).double().encoder
    mean = ControlNet(dit.cfg, ControlNetConfig(depth=2, fold="mean")).double().encoder
    mean.net.load_state_dict(ordered.net.state_dict())
    maps = torch.rand(2, 1, 9, 32, 32, dtype=torch.float64)
    torch.testing.assert_close(ordered(maps), mean(maps), rtol=0, atol=1e-12)
    assert ordered(maps).shape == (2, 3, 4, dit.cfg.width)  # 3 latent frames of 2 x 2 tokens
    swapped = maps[:, :, [0, 4, 3, 2, 1, 8, 7, 6, 5]]  # each group's frames reversed
    torch.testing.assert_close(mean(swapped), mean(maps))
    with torch.no_grad():
        ordered.fold.weight.normal_(0, 0.1)
    assert not torch.allclose(ordered(swapped), ordered(maps))
    with pytest.raises(InputError, match="fold must be"):
        ControlNetConfig(fold="max")


def test_object_masks_match_the_rendered_pixels_and_edges_find_outlines():
    ds = ShapesDataset(ShapesConfig(num_frames=9, num_clips=8, seed=4))
    ious = [mask_iou(ds[i]["video"], truth_masks(ds[i]["truth"], 64, 64)) for i in range(8)]
    assert min(ious) > 0.98, ious  # the coverage at 0.5 finds the anti-aliased edges too
    one = ShapesDataset(ShapesConfig(num_frames=9, num_clips=1, max_objects=1, background="plain"))[0]
    masks = truth_masks(one["truth"], 64, 64)
    assert masks.shape == (9, 64, 64) and masks.min() >= 0 and masks.max() == 1
    edges = edge_maps(one["video"])
    assert edges.shape == (1, 9, 64, 64) and set(edges.unique().tolist()) <= {0.0, 1.0}
    inside = masks > 0.99
    interior = (
        inside
        & np.roll(inside, 2, 1)
        & np.roll(inside, -2, 1)
        & np.roll(inside, 2, 2)
        & np.roll(inside, -2, 2)
    )
    assert not edges[0].numpy()[interior].any()  # no edge deep inside the object
    assert edges[0].numpy()[(masks > 0.01) & ~interior].mean() > 0.2  # but round its outline


def test_save_load_and_another_model_shape(tmp_path):
    dit = tiny_dit()
    net = opened(ControlNet.from_dit(dit, ControlNetConfig(depth=1)))
    save_controlnet(tmp_path / "cn", net)
    back = load_controlnet(tmp_path / "cn", dit)
    for key, value in net.state_dict().items():
        assert torch.equal(value.float(), back.state_dict()[key]), key
    with pytest.raises(InputError, match="another model shape"):
        load_controlnet(tmp_path / "cn", tiny_dit(width=64))
    save_controlnet(tmp_path / "cn2", net, {"base_model": "runs/own/model"})
    with pytest.raises(InputError, match="use it with the model it was trained on: -c runs/own/model"):
        load_controlnet(tmp_path / "cn2", tiny_dit(width=64))


def test_train_controlnet_touches_only_the_branch_and_generate_uses_it(tiny_bundle, tmp_path, monkeypatch):
    run = tmp_path / "run"
    args = ["train", "controlnet", "--base", str(tiny_bundle), "--run", str(run), "--clips", "4"]
    args += ["--frames", "5", "--size", "32", "--depth", "1", "--batch-size", "4", "--steps", "40"]
    args += [
        "--lr",
        "3e-3",
        "--warmup",
        "0",
        "--workers",
        "0",
        "--ckpt-every",
        "0",
        "--set",
        "train.log_every=1",
    ]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    losses = [json.loads(line)["loss"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert sum(losses[-8:]) < sum(losses[:8]), losses
    config = json.loads((run / "model" / "config.json").read_text())
    assert config["kind"] == "controlnet" and config["config"]["controlnet"]["depth"] == 1
    # Going on from the trained branch: the same first batch (same seed) now costs less, and a
    # recipe asking for another depth is refused in one sentence.
    again = [*args[:5], str(tmp_path / "again"), *args[6:], "--init", str(run / "model")]
    again[again.index("--steps") + 1] = "1"
    out = CliRunner().invoke(main, again)
    assert out.exit_code == 0, out.output
    first = json.loads((tmp_path / "again" / "log.jsonl").read_text().splitlines()[0])["loss"]
    assert first < losses[0] - 0.05, (first, losses[0])
    deeper = [*again[:5], str(tmp_path / "deeper"), *again[6:]]
    deeper[deeper.index("--depth") + 1] = "2"
    out = CliRunner().invoke(main, deeper)
    assert out.exit_code != 0 and "leave [controlnet] as the branch was trained" in out.output, out.output

    pipe = load_pipeline(tiny_bundle)
    gen = GenerateConfig(frames=5, height=32, width=32, steps=2)
    ds = ShapesDataset(ShapesConfig(num_frames=5, height=32, width=32, num_clips=1, seed=7))
    maps = torch.from_numpy(truth_masks(ds[0]["truth"], 32, 32))[None, None]
    base = generate(pipe, [ds[0]["caption"]], gen)
    from filmstrip.cli.generate import with_controlnet

    off = with_controlnet(pipe, run / "model", 0.0)
    torch.testing.assert_close(generate(off, [ds[0]["caption"]], gen, control=maps), base, rtol=0, atol=1e-6)
    on = with_controlnet(pipe, run / "model", 1.0)
    assert not torch.allclose(generate(on, [ds[0]["caption"]], gen, control=maps), base, atol=1e-4)
    with pytest.raises(InputError, match="frames, height, width"):
        generate(on, [ds[0]["caption"]], gen, control=maps[:, :, :3])
    with pytest.raises(InputError, match=r"outside \[0, 1\]"):
        generate(on, [ds[0]["caption"]], gen, control=maps * 3)
    # The CLI reads the maps from a video.
    write_video(tmp_path / "maps.mp4", (maps[0].repeat(3, 1, 1, 1) * 255).round().byte(), fps=8)
    cli = ["generate", "a red circle", "--checkpoint", str(tiny_bundle), "--frames", "5", "--size", "32"]
    cli += ["--steps", "2", "--control", str(tmp_path / "maps.mp4"), "--control-net", str(run / "model")]
    scales = []
    real = pipelines_generate.generate
    monkeypatch.setattr(
        pipelines_generate,
        "generate",
        lambda p, q, c, *a, **k: scales.append(c.text_scale) or real(p, q, c, *a, **k),
    )
    out = CliRunner().invoke(main, [*cli, "-o", str(tmp_path / "out.mp4")])
    assert out.exit_code == 0, out.output
    out = CliRunner().invoke(main, [*cli, "--cfg", "3", "-o", str(tmp_path / "out3.mp4")])
    assert out.exit_code == 0, out.output
    assert scales == [CONTROL_TEXT_SCALE, 3.0]  # maps ask for less of the prompt's push, unless told


def test_train_controlnet_and_lora_refuse_a_size_the_dit_cannot_patch(tiny_bundle, tmp_path):
    """24 px frames are 3x3 latents, which 2x2 patches do not divide: said before any encoding."""
    for command in (["controlnet"], ["lora", "--data", "shapes"]):
        run = tmp_path / command[0]
        args = ["train", *command, "--base", str(tiny_bundle), "--run", str(run), "--clips", "4"]
        out = CliRunner().invoke(main, [*args, "--frames", "5", "--size", "24", "--steps", "1"])
        assert (
            out.exit_code == 1 and "--size 24 (data.size): " in out.output and "multiple of 16" in out.output
        ), out.output
        assert not run.exists()
