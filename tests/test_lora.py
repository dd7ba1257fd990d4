"""LoRA on the DiT (models/lora.py): an exact no-op at the start and at scale 0, merge equals
unmerged, save/load round trip, several at once, clear errors, and training that changes
only the adapters."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open

from filmstrip.checkpoint import CheckpointError
from filmstrip.cli import main
from filmstrip.data.shapes import ShapesConfig, render, sample_scene
from filmstrip.errors import InputError
from filmstrip.io import read_video, to_uint8_thwc
from filmstrip.models.conditioning import Conditioning
from filmstrip.models.dit import VideoDiT
from filmstrip.models.dit import preset as dit_preset
from filmstrip.models.lora import (
    LoRAConfig,
    adapter_names,
    add_lora,
    apply_loras,
    load_lora,
    lora_layers,
    merge_loras,
    parse_lora_arg,
    save_lora,
    set_scales,
)
from filmstrip.pipelines.generate import GenerateConfig, generate, load_pipeline


def tiny_dit(seed=0, **overrides) -> VideoDiT:
    torch.manual_seed(seed)
    model = VideoDiT(dit_preset("tiny", **{"in_channels": 4, "context_dim": 32, **overrides})).double()
    with torch.no_grad():  # open the zero-initialised gates so every path carries signal
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def inputs(seed=1):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(2, 4, 3, 4, 4, generator=g, dtype=torch.float64)
    t = torch.rand(2, 3, generator=g, dtype=torch.float64)
    cond = Conditioning(
        torch.randn(2, 5, 32, generator=g, dtype=torch.float64), torch.ones(2, 5, dtype=torch.bool)
    )
    return z, t, cond


def trained_lora(model, name="default", rank=4, seed=2):
    """Add an adapter and give its B matrices values, as training would."""
    add_lora(model, LoRAConfig(rank=rank), name)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora_layers(model):
            b = layer.lora_B[name].weight
            b.copy_(torch.randn(b.shape, generator=g, dtype=b.dtype) * 0.1)
    return model


def test_a_new_lora_is_an_exact_no_op_and_only_it_trains():
    model = tiny_dit()
    z, t, cond = inputs()
    before = model(z, t, cond)
    add_lora(model, LoRAConfig(rank=4))
    assert torch.equal(model(z, t, cond), before)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_" in n for n in trainable)
    adapted = {n.rsplit(".lora_", 1)[0] for n in trainable}
    assert "blocks.0.attn.qkv" in adapted and "blocks.1.cross.kv" in adapted and "blocks.0.mlp.2" in adapted
    assert not any("ada" in n or "embed" in n or "final" in n for n in adapted)


def test_scale_zero_is_the_base_model_and_merge_equals_unmerged():
    base = tiny_dit()
    z, t, cond = inputs()
    expected = base(z, t, cond)
    model = trained_lora(tiny_dit())
    assert not torch.allclose(model(z, t, cond), expected)
    set_scales(model, {"default": 0.0})
    torch.testing.assert_close(model(z, t, cond), expected, rtol=0, atol=1e-12)
    set_scales(model, {"default": 0.7})
    unmerged = model(z, t, cond)
    merge_loras(model)
    assert not lora_layers(model) and isinstance(model.blocks[0].attn.qkv, torch.nn.Linear)
    torch.testing.assert_close(model(z, t, cond), unmerged, rtol=1e-10, atol=1e-10)


def test_save_load_round_trip_and_two_loras_at_once(tmp_path):
    z, t, cond = inputs()
    a, b = trained_lora(tiny_dit(), seed=2), trained_lora(tiny_dit(), seed=3)
    save_lora(tmp_path / "a.safetensors", a)
    save_lora(tmp_path / "b.safetensors", b)
    with safe_open(str(tmp_path / "a.safetensors"), "pt") as f:
        keys, meta = list(f.keys()), f.metadata()
    assert all(k.startswith("transformer.blocks.") and ".lora_" in k for k in keys)  # diffusers' names
    assert json.loads(meta["lora"])["rank"] == 4 and json.loads(meta["base"])["width"] == a.cfg.width

    fresh = tiny_dit()
    assert load_lora(fresh, tmp_path / "a.safetensors") == "a"
    torch.testing.assert_close(fresh(z, t, cond), a(z, t, cond), rtol=0, atol=1e-12)
    # Two at once: the base plus both updates, each at its scale.
    load_lora(fresh, tmp_path / "b.safetensors", scale=0.5)
    assert adapter_names(fresh) == ["a", "b"]
    base = tiny_dit()(z, t, cond)
    da, db = a(z, t, cond) - base, b(z, t, cond) - base
    both = fresh(z, t, cond)
    # The updates are small, so the effect of both is close to the sum of each (not exact:
    # the network is not linear in its weights).
    assert ((both - base) - (da + 0.5 * db)).abs().max() < 0.2 * (da + 0.5 * db).abs().max()
    merged = tiny_dit()
    apply_loras(merged, [(tmp_path / "a.safetensors", 1.0), (tmp_path / "b.safetensors", 0.5)], merge=True)
    torch.testing.assert_close(merged(z, t, cond), both, rtol=1e-10, atol=1e-10)


def test_a_lora_on_the_text_refiner_round_trips(tmp_path):
    """Targets beyond the blocks (the refiner that binds a prompt's words) save under their
    own names and load back onto a fresh model exactly; the refiner's output depends on them."""
    targets = r"text_refiner\.layers\.\d+\.(attn\.(qkv|out)|mlp\.(0|2))"
    z, t, _ = inputs()
    text = torch.randn(2, 5, 64, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    cond = Conditioning(text, torch.ones(2, 5, dtype=torch.bool))
    model = tiny_dit(text_refiner=1, context_dim=64)
    add_lora(model, LoRAConfig(rank=4, targets=targets))
    with torch.no_grad():
        for layer in lora_layers(model):
            layer.lora_B["default"].weight.normal_(0, 0.1)
    assert not torch.allclose(model(z, t, cond), tiny_dit(text_refiner=1, context_dim=64)(z, t, cond))
    save_lora(tmp_path / "r.safetensors", model)
    with safe_open(str(tmp_path / "r.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and all(k.startswith("transformer.text_refiner.layers.0.") for k in keys)
    fresh = tiny_dit(text_refiner=1, context_dim=64)
    load_lora(fresh, tmp_path / "r.safetensors")
    torch.testing.assert_close(fresh(z, t, cond), model(z, t, cond), rtol=0, atol=1e-12)


def test_a_lora_for_another_model_shape_or_not_a_lora_gets_one_sentence(tmp_path):
    save_lora(tmp_path / "a.safetensors", trained_lora(tiny_dit()))
    other = tiny_dit(width=64)
    with pytest.raises(
        InputError, match=r"another model shape \(width 48 \(this model: 64\)\); use it with the model it"
    ):
        load_lora(other, tmp_path / "a.safetensors")
    # A file that says which model it adapted names it.
    save_lora(tmp_path / "b.safetensors", trained_lora(tiny_dit()), notes={"base_model": "runs/own/model"})
    with pytest.raises(InputError, match="use it with the model it was trained on: -c runs/own/model"):
        load_lora(other, tmp_path / "b.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_lora(tiny_dit(), tmp_path / "junk.safetensors")
    with pytest.raises(InputError, match="no such LoRA file"):
        load_lora(tiny_dit(), tmp_path / "missing.safetensors")
    with pytest.raises(InputError, match="already has a LoRA named"):
        add_lora(add_lora(tiny_dit(), LoRAConfig()), LoRAConfig())
    with pytest.raises(InputError, match="rank must be at least 1"):
        LoRAConfig(rank=0)
    assert parse_lora_arg("dir/star.safetensors:0.8") == ("dir/star.safetensors", 0.8)
    assert parse_lora_arg("c:/star.safetensors") == ("c:/star.safetensors", 1.0)
    (tmp_path / "star.safetensors").write_bytes(b"")
    with pytest.raises(InputError, match="the scale after ':' must be a number, e.g. .*star.safetensors:0.8"):
        parse_lora_arg(f"{tmp_path / 'star.safetensors'}:strong")
    with pytest.raises(InputError, match="the scale after ':' must be a number"):
        parse_lora_arg("lora_star:abc")  # a shipped LoRA, by name


def test_train_lora_changes_only_the_adapter_and_generate_loads_it(tiny_bundle, tmp_path):
    """`train lora` on a captioned folder: the loss falls, the file holds the adapter alone,
    and `generate --lora` at scale 0 draws exactly what the base model draws."""
    clips = tmp_path / "clips"
    args = ["data", "export", "shapes", str(clips), "--clips", "4", "--frames", "5", "--size", "32"]
    out = CliRunner().invoke(
        main, [*args, "--shapes", "circle,star", "--sizes", "large", "--require", "star"]
    )
    assert out.exit_code == 0, out.output
    assert len(list(clips.glob("*.mp4"))) == 4 and "star" in (clips / "clip_00000.txt").read_text()
    # The clips come back exactly as drawn: a lossy codec's smear is not what a LoRA should learn.
    cfg = ShapesConfig(num_frames=5, height=32, width=32, shapes=("circle", "star"), sizes=("large",))
    scenes = (sample_scene(np.random.default_rng([0, i]), cfg) for i in range(100))
    scene = next(s for s in scenes if any(o.shape == "star" for o in s.objects))
    np.testing.assert_array_equal(to_uint8_thwc(read_video(clips / "clip_00000.mp4")[0]), render(scene, cfg))
    run = tmp_path / "run"
    common = ["train", "lora", "--data", f"folder:{clips}", "--base", str(tiny_bundle), "--frames", "5"]
    common += ["--size", "32", "--rank", "4", "--batch-size", "4", "--lr", "1e-2", "--warmup", "0"]
    common += ["--ckpt-every", "0", "--set", "train.log_every=1"]
    out = CliRunner().invoke(main, [*common, "--run", str(run), "--steps", "60"])
    assert out.exit_code == 0, out.output
    losses = [json.loads(line)["loss"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert sum(losses[-10:]) < sum(losses[:10]), losses
    with safe_open(str(run / "lora.safetensors"), "pt") as f:
        assert all(".lora_" in k for k in f.keys())  # noqa: SIM118
    # Prior preservation: the same training beside another cache's clips (here the clips'
    # own cache stands in for the base model's), and the data it saw recorded with the file.
    prior = tmp_path / "prior_run"
    out = CliRunner().invoke(
        main, [*common, "--run", str(prior), "--steps", "4", "--prior", str(run / "latents")]
    )
    assert out.exit_code == 0, out.output
    with safe_open(str(prior / "lora.safetensors"), "pt") as f:
        notes = json.loads(f.metadata()["notes"])
    assert f"prior {run / 'latents'}" in notes["data"] and notes["step"] == 4 and notes["noise_shift"] == 2.0
    assert notes["base_model"] == str(tiny_bundle.resolve())  # a bundled base is recorded by its name

    pipe = load_pipeline(tiny_bundle)
    gen = GenerateConfig(frames=5, height=32, width=32, steps=2)
    base = generate(pipe, ["a large red star moves right"], gen)
    names = apply_loras(pipe.dit, [(run / "lora.safetensors", 0.0)])
    assert names == ["lora"]
    torch.testing.assert_close(generate(pipe, ["a large red star moves right"], gen), base, rtol=0, atol=1e-6)
    set_scales(pipe.dit, {"lora": 1.0})
    assert not torch.allclose(generate(pipe, ["a large red star moves right"], gen), base, atol=1e-3)
    video = tmp_path / "out.mp4"
    cli = ["generate", "a large red star", "--checkpoint", str(tiny_bundle), "--frames", "5", "--size", "32"]
    out = CliRunner().invoke(
        main, [*cli, "--steps", "2", "--lora", f"{run / 'lora.safetensors'}:0.8", "-o", str(video)]
    )
    assert out.exit_code == 0, out.output
    assert video.exists()
    bad = CliRunner().invoke(main, [*cli, "--lora", str(tmp_path / "none.safetensors"), "-o", str(video)])
    assert bad.exit_code == 1 and "no such LoRA file" in bad.output


def test_a_lora_draws_its_training_noise_at_its_own_shift(monkeypatch):
    """LoRATask(shift=S) trains at noise levels shifted by S; its spec, which previews sample
    with and which describes the base, keeps the base model's shift."""
    import filmstrip.train.t2v_task as t2v_task
    from filmstrip.diffusion.flow import FlowConfig
    from filmstrip.diffusion.spec import ModelSpec
    from filmstrip.train.lora_task import LoRATask
    from filmstrip.train.t2v_task import T2VConfig

    shifts, real = [], t2v_task.sample_t
    monkeypatch.setattr(
        t2v_task, "sample_t", lambda shape, shift, *a: shifts.append(shift) or real(shape, shift, *a)
    )
    spec = ModelSpec(flow=FlowConfig(shift=4.5))
    batch = {
        "latents": torch.randn(4, 4, 3, 4, 4),
        "text": torch.randn(4, 5, 32),
        "text_mask": torch.ones(4, 5, dtype=torch.bool),
    }
    cfg = T2VConfig(text_dropout=0.0, image_fraction=0.0, last_frame=0.0, frame_noise=0.5)
    for shift, expected in ((None, 4.5), (1.5, 1.5)):
        shifts.clear()
        task = LoRATask(tiny_dit().float(), spec, cfg, LoRAConfig(rank=2), torch.zeros(1, 32), shift=shift)
        task.loss(task.model, batch, 0, torch.Generator().manual_seed(0))
        assert shifts and set(shifts) == {expected}
        assert task.spec == spec
    with pytest.raises(InputError, match="shift must be a positive number"):
        from filmstrip.train.recipes import LoRARecipe

        LoRARecipe(shift=0.0)


def test_eval_concept_draws_another_fresh_set_with_another_scene_seed(tiny_bundle, monkeypatch):
    """`eval concept --scene-seed S`: other fresh scenes (each still with a star), so a choice
    made on the default set can be checked on prompts it was not chosen on."""
    import filmstrip.eval.concept as concept

    drawn, real = [], concept.run_concept

    def spy(pipe, cfg, gen, **kwargs):
        drawn.append([p for p, _ in concept.concept_prompts(cfg)])
        return real(pipe, cfg, gen, **kwargs)

    monkeypatch.setattr(concept, "run_concept", spy)
    for extra in ([], ["--scene-seed", "777"]):
        args = ["eval", "concept", "-c", str(tiny_bundle), "--prompts", "2", "--steps", "1", *extra]
        out = CliRunner().invoke(main, args)
        assert out.exit_code == 0, out.output
    assert drawn[0] == [p for p, _ in concept.concept_prompts(concept.ConceptConfig(num_prompts=2))]
    assert drawn[1] != drawn[0] and all("star" in p for p in drawn[1])


def test_focus_masks_weigh_the_new_shape_in_the_lora_loss(tiny_bundle, tmp_path):
    """`data export --focus star` writes each clip's star mask exactly; `train lora` caches it
    at latent resolution; and `task.focus_weight` reaches the loss (a zero mask changes
    nothing, a star's mask does)."""
    from filmstrip.data.latents import LatentDataset, latent_focus
    from filmstrip.data.shapes import truth_masks
    from filmstrip.diffusion.spec import ModelSpec
    from filmstrip.train.lora_task import LoRATask
    from filmstrip.train.t2v_task import T2VConfig

    clips = tmp_path / "clips"
    args = ["data", "export", "shapes", str(clips), "--clips", "2", "--frames", "5", "--size", "32"]
    args += ["--shapes", "circle,star", "--sizes", "large", "--require", "star", "--focus", "star"]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    truth = json.loads((clips / "clip_00000.json").read_text())
    stars = truth_masks({**truth, "objects": [o for o in truth["objects"] if o["shape"] == "star"]}, 32, 32)
    mask = to_uint8_thwc(read_video(clips / "clip_00000.mask.mp4")[0])
    np.testing.assert_array_equal(mask[..., 0], np.round(stars * 255).astype(np.uint8))
    bad = CliRunner().invoke(main, [*args[:3], str(tmp_path / "bad"), "--focus", "hexagon"])
    assert bad.exit_code != 0 and "--focus 'hexagon' is not among the shapes drawn" in bad.output

    run = tmp_path / "run"
    common = ["train", "lora", "--data", f"folder:{clips}", "--base", str(tiny_bundle), "--frames", "5"]
    common += ["--size", "32", "--batch-size", "2", "--steps", "2", "--ckpt-every", "0"]
    out = CliRunner().invoke(main, [*common, "--run", str(run), "--focus-weight", "4"])
    assert out.exit_code == 0, out.output
    assert "focus_weight = 4.0" in (run / "recipe.toml").read_text()
    cached = LatentDataset(run / "latents")[0]["focus"]
    expected = latent_focus(torch.from_numpy(np.round(stars * 255) / 255).float()[None, None], 4, 8)[0]
    torch.testing.assert_close(cached, expected.half().float(), rtol=0, atol=0)
    assert cached.amax() > 0.9 and cached.amin() == 0
    for mask in clips.glob("*.mask.mp4"):  # a folder without masks: said so
        mask.unlink()
    out = CliRunner().invoke(main, [*common, "--run", str(tmp_path / "bare"), "--focus-weight", "4"])
    assert out.exit_code == 0, out.output
    assert (
        "Warning: task.focus_weight is 4 but the clips of" in out.output
        and "have no focus masks" in out.output
    )

    g = torch.Generator().manual_seed(0)
    batch = {
        "latents": torch.randn(2, 4, 2, 4, 4, generator=g),
        "text": torch.randn(2, 5, 32, generator=g),
        "text_mask": torch.ones(2, 5, dtype=torch.bool),
    }
    star = (torch.rand(2, 2, 4, 4, generator=g) > 0.7).float()
    cfg = T2VConfig(text_dropout=0.0, image_fraction=0.0, focus_weight=5.0)
    task = LoRATask(tiny_dit().float(), ModelSpec(), cfg, LoRAConfig(rank=2), torch.zeros(1, 32))
    loss = lambda b: task.loss(task.model, b, 0, torch.Generator().manual_seed(1))[0]  # noqa: E731
    plain = loss(batch)
    assert torch.equal(loss({**batch, "focus": torch.zeros_like(star)}), plain)
    assert not torch.allclose(loss({**batch, "focus": star}), plain)
