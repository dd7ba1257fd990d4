"""Text-to-video with tiny parts: latent cache, training, generation end to end, errors."""

import json
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from filmstrip.checkpoint import CheckpointError, load_model
from filmstrip.cli import main
from filmstrip.data import ShapesConfig, ShapesDataset
from filmstrip.data.latents import LatentDataset, build_latent_cache, collate_latents
from filmstrip.diffusion.spec import ModelSpec
from filmstrip.errors import InputError
from filmstrip.eval.prompt_suite import SuiteConfig, held_out_prompts, run_suite, seen_prompts
from filmstrip.io import probe
from filmstrip.models.dit import preset as dit_preset
from filmstrip.pipelines.generate import GenerateConfig, generate, load_pipeline
from filmstrip.train.recipes import with_focus
from filmstrip.train.t2v_task import T2VConfig, T2VTask


def shapes(n=6):
    return ShapesDataset(ShapesConfig(num_frames=5, height=32, width=32, num_clips=n))


def test_latent_cache_round_trip_and_resume(tmp_path, tiny_vae, text_encoder):
    ds = shapes()
    root = build_latent_cache(ds, tiny_vae, text_encoder, tmp_path / "cache", num_clips=6, shard_size=4)
    cache = LatentDataset(root)
    assert len(cache) == 6 and len(cache.shards) == 2
    item = cache[5]
    with torch.no_grad():
        expected = tiny_vae.encode(ds[5]["video"][None])[0]
    torch.testing.assert_close(item["latents"], expected, rtol=1e-3, atol=1e-3)  # stored as fp16
    assert item["caption"] == ds[5]["caption"] and item["truth"]["objects"]
    states, _ = text_encoder.encode([ds[5]["caption"]])
    torch.testing.assert_close(item["text"], states[0], rtol=1e-3, atol=2e-3)
    batch = collate_latents([cache[0], cache[5]])
    assert batch["latents"].shape == (2, 4, 2, 4, 4) and batch["text_mask"].sum() == sum(
        cache[i]["text"].shape[0] for i in (0, 5)
    )
    # An interrupted build resumes: only the missing shard is written again, here by loader
    # worker processes, and it comes out as it was.
    before = load_file(str(root / "shard_00001.safetensors"))
    (root / "shard_00001.safetensors").unlink()
    first = (root / "shard_00000.safetensors").stat().st_mtime_ns
    with pytest.raises(ValueError, match="1 of 2 shards"):
        LatentDataset(root)
    build_latent_cache(ds, tiny_vae, text_encoder, root, num_clips=6, shard_size=4, workers=2)
    assert (root / "shard_00000.safetensors").stat().st_mtime_ns == first
    assert len(LatentDataset(root)) == 6
    after = load_file(str(root / "shard_00001.safetensors"))
    for key in before:
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=1e-3)
    # Another cache is not written into this one's folder.
    with pytest.raises(
        InputError, match=r"holds the latent cache of another set \(num_clips 6 -> 5\); build"
    ):
        build_latent_cache(ds, tiny_vae, text_encoder, root, num_clips=5, shard_size=4)


def test_tiny_dit_overfits_one_clip(tiny_vae, text_encoder):
    torch.manual_seed(0)
    null, _ = text_encoder.encode([""])
    task = T2VTask(
        dit_preset("tiny", in_channels=4, patch=(1, 1, 1)),
        ModelSpec(),
        T2VConfig(text_dropout=0.0, image_fraction=0.0),
        null[0],
    )
    clip = shapes(1)[0]
    with torch.no_grad():
        latents = tiny_vae.encode(clip["video"][None])
    text, mask = text_encoder.encode([clip["caption"]])
    batch = {
        "latents": latents.expand(8, -1, -1, -1, -1),
        "text": text.expand(8, -1, -1),
        "text_mask": mask.expand(8, -1),
    }
    opt = torch.optim.AdamW(task.model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for step in range(300):
        loss, _ = task.loss(task.model, batch, step, g)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert last < first / 10, (first, last)


def test_batches_mix_images_and_videos(text_encoder):
    null, _ = text_encoder.encode([""])
    task = T2VTask(
        dit_preset("tiny", in_channels=4),
        ModelSpec(),
        T2VConfig(image_fraction=0.25, text_dropout=0.0),
        null[0],
    )
    seen = []

    def model(x, t, cond):
        seen.append((tuple(x.shape), tuple(t.shape), cond.context.shape[0]))
        return torch.zeros_like(x)

    text, mask = text_encoder.encode(["a red circle"] * 8)
    batch = {"latents": torch.randn(8, 4, 3, 4, 4), "text": text, "text_mask": mask}
    loss, logs = task.loss(model, batch, 0, torch.Generator().manual_seed(0))
    # 2 of 8 clips go in as their first latent frame, the other 6 as whole clips, in one step.
    assert seen == [((2, 4, 1, 4, 4), (2, 1), 2), ((6, 4, 3, 4, 4), (6, 3), 6)]
    assert {"loss_image", "loss_video"} <= set(logs)
    # Each clip weighs the same: the loss is the mean of the two groups' per-clip losses.
    assert loss.item() == pytest.approx((2 * logs["loss_image"] + 6 * logs["loss_video"]) / 8, rel=1e-6)


def test_generate_is_seeded_and_guidance_matters(tiny_bundle):
    pipe = load_pipeline(tiny_bundle)
    cfg = GenerateConfig(frames=9, height=32, width=32, steps=2, seed=3)
    a = generate(pipe, ["a red circle moves up", "a blue square"], cfg)
    assert a.shape == (2, 3, 9, 32, 32) and a.abs().max() <= 1
    assert torch.equal(a, generate(pipe, ["a red circle moves up", "a blue square"], cfg))
    b = generate(
        pipe,
        ["a red circle moves up", "a blue square"],
        GenerateConfig(frames=9, height=32, width=32, steps=2, seed=4),
    )
    assert not torch.equal(a, b)
    no_cfg = generate(
        pipe,
        ["a red circle moves up"],
        GenerateConfig(frames=9, height=32, width=32, steps=2, seed=3, text_scale=1.0),
    )
    assert not torch.equal(no_cfg[0], a[0])
    negative = generate(pipe, ["a red circle moves up"], cfg, negative="a blue square")
    assert not torch.equal(negative[0], a[0])
    # In a batch, prompt k uses seed + k: the same video as generating it alone.
    alone = generate(pipe, ["a blue square"], GenerateConfig(frames=9, height=32, width=32, steps=2, seed=4))
    torch.testing.assert_close(alone[0], a[1], atol=1e-4, rtol=0)


def test_prompt_suite_prompts_and_scores(tiny_bundle):
    cfg = SuiteConfig(num_prompts=4, frames=9, size=32)
    train = ShapesDataset(ShapesConfig(num_frames=9, height=32, width=32, held_out=cfg.held_out))
    # "Seen" prompts are the training captions themselves.
    assert [c for c, _ in seen_prompts(cfg, 3)] == [train[i]["caption"] for i in range(3)]
    # ... also when training captions say where objects start.
    told = replace(cfg, start_words=1.0)
    train_told = ShapesDataset(replace(train.cfg, start_words=1.0))
    assert [c for c, _ in seen_prompts(told, 3)] == [train_told[i]["caption"] for i in range(3)]
    pairs = zip(held_out_prompts(told, 2), held_out_prompts(cfg, 2), strict=True)
    assert all(len(a) > len(b) for (a, _), (b, _) in pairs)
    # Held-out prompts each contain an excluded combination, taken in turn.
    held = held_out_prompts(cfg, 4)
    for k, (_, truth) in enumerate(held):
        want = cfg.held_out[k % len(cfg.held_out)]
        assert any((o["colour"], o["shape"], o["direction"]) == want for o in truth["objects"])
    result = run_suite(
        load_pipeline(tiny_bundle),
        cfg,
        GenerateConfig(frames=9, height=32, width=32, steps=2),
        progress=False,
    )
    assert [r["set"] for r in result["prompts"]] == ["seen", "seen", "held_out", "held_out"]
    for part in ("seen", "held_out"):
        assert set(result[part]) == {"colour", "shape", "direction", "count", "consistency", "swapped"}
        assert all(0 <= v <= 1 for v in result[part].values())
    assert set(result["held_out_object"]) == {"colour", "shape", "direction"}
    counts = [r["objects"] for r in result["prompts"]]
    assert counts == [len(truth["objects"]) for _, truth in seen_prompts(cfg, 2) + held[:2]]
    assert sorted(result["by_objects"]) == sorted(set(counts))
    for n, m in result["by_objects"].items():
        rows = [r["direction"] for r in result["prompts"] if r["objects"] == n]
        assert m["direction"] == pytest.approx(sum(rows) / len(rows))


def test_generate_cli_end_to_end_and_errors(tiny_bundle, tmp_path):
    out = tmp_path / "clip.mp4"
    runner = CliRunner()
    args = [
        "generate",
        "a red circle moves to the right",
        "-o",
        str(out),
        "-c",
        str(tiny_bundle),
        "--frames",
        "9",
        "--size",
        "32",
        "--steps",
        "2",
    ]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out) and probe(out).num_frames == 9
    result = runner.invoke(main, [*args, "--lag", "0.5"])  # a pyramid schedule runs end to end
    assert result.exit_code == 0 and probe(out).num_frames == 9, result.output
    result = runner.invoke(main, [*args, "--lag", "-1"])
    assert result.exit_code == 1 and "pyramid lag" in result.output
    result = runner.invoke(main, ["generate", "  ", "-o", str(out), "-c", str(tiny_bundle)])
    assert result.exit_code == 1 and "prompt is empty" in result.output
    result = runner.invoke(
        main, ["generate", "a red circle", "-o", str(out), "-c", str(tiny_bundle), "--size", "40"]
    )
    assert result.exit_code == 1 and "multiples of 16" in result.output
    result = runner.invoke(main, ["generate", "a red circle", "-o", str(out), "-c", str(tmp_path / "none")])
    assert result.exit_code == 1 and "no such checkpoint" in result.output
    assert "or a bundled name: " in result.output and " t2v_causal, " in result.output  # what a name can be
    with pytest.raises(CheckpointError, match="'vae' checkpoint, but a 'dit'"):
        load_pipeline(tiny_bundle / "vae")


def test_eval_adherence_cli(tiny_bundle, tmp_path):
    out = tmp_path / "adherence.json"
    args = ["eval", "adherence", "-c", str(tiny_bundle), "--prompts", "2", "--frames", "9", "--size", "32"]
    result = CliRunner().invoke(main, [*args, "--steps", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "seen in training" in result.output and "held-out combinations" in result.output
    first_rows = json.loads(out.read_text())["prompts"]
    assert len(first_rows) == 2
    # --samples 2: every prompt twice, from other noise; the first videos are the ones above.
    again = CliRunner().invoke(main, [*args, "--steps", "1", "--samples", "2", "--json", str(out)])
    assert again.exit_code == 0, again.output
    rows = json.loads(out.read_text())["prompts"]
    assert [r["sample"] for r in rows] == [0, 0, 1, 1] and "2 videos each" in again.output
    assert rows[:2] == first_rows
    assert CliRunner().invoke(main, [*args, "--samples", "0"]).exit_code != 0
    assert "not on `shapes`" not in again.output  # the tiny model says nothing of its data


def test_a_shapes_evaluation_of_a_model_trained_on_other_data_says_so(tiny_bundle, text_encoder, tmp_path):
    from filmstrip.checkpoint import save_model

    null, _ = text_encoder.encode([""])
    task = T2VTask(
        dit_preset("tiny", in_channels=4),
        ModelSpec(vae="vae"),
        T2VConfig(),
        null[0],
        data_name="folder:/x 17x32x32",
    )
    config, meta = task.export(task.model)
    save_model(tmp_path / "m", "dit", config, task.model.state_dict(), meta)
    (tmp_path / "m" / "vae").symlink_to(tiny_bundle.parent / "vae")
    args = ["eval", "adherence", "-c", str(tmp_path / "m"), "--prompts", "2", "--frames", "5", "--size", "32",
            "--steps", "1"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "trained on folder:/x, not on `shapes`, whose scenes this evaluation reads" in result.output


def test_motion_loss_is_added_per_clip(text_encoder):
    null, _ = text_encoder.encode([""])
    text, mask = text_encoder.encode(["a red circle moves up"] * 4)
    batch = {"latents": torch.randn(4, 4, 3, 4, 4), "text": text, "text_mask": mask}
    losses = {}
    for weight in (0.0, 0.5):
        torch.manual_seed(0)
        task = T2VTask(
            dit_preset("tiny", in_channels=4),
            ModelSpec(),
            T2VConfig(image_fraction=0.0, motion=weight),
            null[0],
        )
        losses[weight] = task.loss(task.model, batch, 0, torch.Generator().manual_seed(0))
    (plain, plain_logs), (with_motion, logs) = losses[0.0], losses[0.5]
    assert "motion" not in plain_logs and logs["motion"] > 0
    assert with_motion.item() == pytest.approx(plain.item() + 0.5 * logs["motion"], rel=1e-5)


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_frame_noise_draws_a_level_per_latent_frame(text_encoder, share):
    null, _ = text_encoder.encode([""])
    text, mask = text_encoder.encode(["a red circle moves up"] * 64)
    batch = {"latents": torch.randn(64, 4, 3, 4, 4), "text": text, "text_mask": mask}
    seen = []

    def model(x, t, cond):
        seen.append(t)
        return torch.zeros_like(x)

    task = T2VTask(
        dit_preset("tiny", in_channels=4),
        ModelSpec(),
        T2VConfig(image_fraction=0.125, frame_noise=share, text_dropout=0.0),
        null[0],
    )
    task.loss(model, batch, 0, torch.Generator().manual_seed(0))
    image_t, video_t = seen
    assert image_t.shape == (8, 1) and video_t.shape == (56, 3)
    per_frame = (video_t != video_t[:, :1]).any(dim=1).float().mean().item()
    # Clips not drawn per frame keep one shared level; the drawn share is close to `share`.
    assert per_frame == pytest.approx(share, abs=0.15)
    assert ((video_t > 0) & (video_t < 1)).all()


def test_train_t2v_cli_fine_tunes_from_init(tiny_bundle, tmp_path):
    args = ["train", "t2v", "--vae", str(tiny_bundle.parent / "vae"), "--preset", "tiny", "--clips", "4"]
    args += ["--frames", "5", "--size", "32", "--batch-size", "2", "--sample-every", "0", "--ckpt-every", "0"]
    first = CliRunner().invoke(main, [*args, "--run", str(tmp_path / "a"), "--steps", "2"])
    assert first.exit_code == 0, first.output
    # With a zero learning rate, a fine-tune from the first model must export it unchanged.
    # Adding the frame and place embeddings keeps every trained weight and starts the new ones at zero.
    init = ["--init", str(tmp_path / "a" / "model"), "--motion", "0.5", "--lr", "0", "--steps", "1"]
    init += ["--frame-noise", "0.5", "--frame-embedding", "--place-embedding", "--start-words", "0.5"]
    init += ["--shift", "4.5"]
    second = CliRunner().invoke(main, [*args, "--run", str(tmp_path / "b"), *init])
    assert second.exit_code == 0, second.output
    _, a, _ = load_model(tmp_path / "a" / "model", "dit")
    config, b, meta = load_model(tmp_path / "b" / "model", "dit")
    assert all(torch.equal(a[k], b[k]) for k in a) and meta["step"] == 1
    assert config["dit"]["frame_embedding"] and config["dit"]["place_embedding"]
    assert config["train"]["frame_noise"] == 0.5 and config["spec"]["flow"]["shift"] == 4.5
    assert not b["frame_embed.mlp.2.weight"].any() and not b["place_embed.mlp.2.weight"].any()
    # A size the DiT cannot patch (24 px: 3x3 latents, 2x2 patches) is refused before the cache.
    bad = CliRunner().invoke(main, [*args, "--run", str(tmp_path / "c"), "--steps", "1", "--size", "24"])
    assert bad.exit_code == 1 and "--size 24 (data.size): " in bad.output and "a multiple of 16" in bad.output
    assert not (tmp_path / "c").exists()


def test_train_t2v_on_object_counts_and_several_caches(tiny_bundle, tmp_path):
    """--objects fixes the objects per clip; --extra-cache adds built caches to the data, and
    refuses one whose clips do not stack with the main cache's."""
    args = ["train", "t2v", "--vae", str(tiny_bundle.parent / "vae"), "--preset", "tiny", "--clips", "4"]
    args += ["--size", "32", "--batch-size", "2", "--sample-every", "0", "--ckpt-every", "0", "--steps", "1"]
    three = CliRunner().invoke(main, [*args, "--frames", "5", "--objects", "3", "--run", str(tmp_path / "a")])
    assert three.exit_code == 0, three.output
    cache = LatentDataset(tmp_path / "a" / "latents")
    assert [len(cache[i]["truth"]["objects"]) for i in range(4)] == [3] * 4
    assert "objects=3-3" in cache.meta["dataset"]
    extra = ["--extra-cache", str(tmp_path / "a" / "latents")]
    both = CliRunner().invoke(main, [*args, "--frames", "5", "--run", str(tmp_path / "b"), *extra])
    assert both.exit_code == 0, both.output
    assert "8 cached clips" in both.output
    longer = CliRunner().invoke(main, [*args, "--frames", "9", "--run", str(tmp_path / "c"), *extra])
    assert longer.exit_code != 0 and "same size" in longer.output
    bad = CliRunner().invoke(main, [*args, "--objects", "3-1", "--run", str(tmp_path / "d")])
    assert bad.exit_code != 0 and "MIN <= MAX" in bad.output
    # --steps 0 builds (or checks) the caches and stops: no run folder, no model.
    only = CliRunner().invoke(
        main, [*args, "--frames", "5", "--run", str(tmp_path / "e"), *extra, "--steps", "0"]
    )
    assert only.exit_code == 0, only.output
    assert "latent cache ready" in only.output and "8 clips" in only.output
    assert (tmp_path / "e" / "latents" / "meta.json").exists() and not (tmp_path / "e" / "model").exists()


def test_latent_cache_written_before_a_new_vae_field_still_opens(tmp_path, tiny_vae, text_encoder):
    ds = shapes(4)
    root = build_latent_cache(ds, tiny_vae, text_encoder, tmp_path / "cache", num_clips=4, shard_size=4)
    meta = json.loads((root / "meta.json").read_text())
    del meta["vae"]["factorized"]  # as written before (2+1)D VAEs existed
    (root / "meta.json").write_text(json.dumps(meta))
    build_latent_cache(ds, tiny_vae, text_encoder, root, num_clips=4, shard_size=4)
    with pytest.raises(ValueError, match="latent cache of another set \\(num_clips 4 -> 3\\)"):
        build_latent_cache(ds, tiny_vae, text_encoder, root, num_clips=3, shard_size=4)


def test_generate_edits_a_clip_end_to_end(tiny_bundle, tmp_path):
    """--video (video-to-video) and --edit (inversion) with a tiny checkpoint; a clip of another
    aspect ratio is resized and cropped, and says so; bad combinations get one sentence."""
    import numpy as np

    from filmstrip.io import write_video

    clip = write_video(
        tmp_path / "in.mp4", np.random.default_rng(0).integers(0, 255, (3, 12, 48, 64), np.uint8), fps=8
    )
    base = ["generate", "a blue square moves up", "-c", str(tiny_bundle), "--frames", "9", "--size", "32",
            "--steps", "3"]  # fmt: skip
    runner = CliRunner()
    v2v = runner.invoke(
        main, [*base, "-o", str(tmp_path / "v.mp4"), "--video", str(clip), "--strength", "0.5"]
    )
    assert v2v.exit_code == 0, v2v.output
    assert (
        "64x48 resized and centre-cropped to 32x32" in v2v.output
        and probe(tmp_path / "v.mp4").num_frames == 9
    )
    edited = runner.invoke(
        main,
        [
            *base,
            "-o",
            str(tmp_path / "e.mp4"),
            "--edit",
            str(clip),
            "--source-prompt",
            "a red square moves up",
        ],
    )
    assert edited.exit_code == 0, edited.output
    whole_way = runner.invoke(main, [*base, "-o", str(tmp_path / "w.mp4"), "--edit", str(clip), "--source-prompt",
                                     "a red square moves up", "--strength", "1", "--cfg", "4"])  # fmt: skip
    assert whole_way.exit_code == 0 and probe(tmp_path / "w.mp4").num_frames == 9, whole_way.output
    stray = runner.invoke(main, [*base, "-o", str(tmp_path / "x.mp4"), "--strength", "0.5"])
    assert stray.exit_code == 2 and "--strength goes with --video or --edit" in stray.output
    stray = runner.invoke(main, [*base, "-o", str(tmp_path / "x.mp4"), "--source-prompt", "a red square"])
    assert stray.exit_code == 2 and "--source-prompt goes with --edit or --video" in stray.output
    shared = runner.invoke(main, [*base, "-o", str(tmp_path / "s.mp4"), "--video", str(clip), "--source-prompt",
                                  "a red square moves up"])  # fmt: skip
    assert shared.exit_code == 0 and probe(tmp_path / "s.mp4").num_frames == 9, shared.output
    both = runner.invoke(
        main, [*base, "-o", str(tmp_path / "x.mp4"), "--video", str(clip), "--edit", str(clip)]
    )
    assert both.exit_code == 2 and "not several" in both.output
    alone = runner.invoke(main, [*base, "-o", str(tmp_path / "x.mp4"), "--edit", str(clip)])
    assert alone.exit_code == 2 and "--source-prompt" in alone.output
    short = runner.invoke(
        main, [*base, "-o", str(tmp_path / "x.mp4"), "--video", str(clip), "--frames", "17"]
    )
    assert short.exit_code == 1 and "asked for 17 frames" in short.output, short.output


def test_rollout_training_gives_a_causal_model_its_own_continuation_as_context(text_encoder):
    null, _ = text_encoder.encode([""])
    text, mask = text_encoder.encode(["a red circle moves up"] * 16)
    batch = {"latents": torch.randn(16, 4, 4, 4, 4), "text": text, "text_mask": mask}
    torch.manual_seed(0)
    task = T2VTask(
        dit_preset("tiny", in_channels=4, causal=True),
        ModelSpec(),
        T2VConfig(image_fraction=0.0, text_dropout=0.0, rollout=1.0, rollout_steps=2),
        null[0],
    )
    with torch.no_grad():
        for p in task.model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    seen = []

    def model(x, t, cond):
        seen.append((x.clone(), t.clone()))
        return task.model(x, t, cond)

    loss, _ = task.loss(model, batch, 0, torch.Generator().manual_seed(0))
    loss.backward()  # the rollout itself carries no gradient; the loss does
    ((x, t),) = seen
    given = t == 0
    p = int(given[0].sum())
    assert 2 <= p < 4 and given[:, :p].all() and not given[:, p:].any()
    z = batch["latents"]
    assert torch.equal(x[:, :, :1], z[:, :, :1])  # frame 0 is the clip's own
    assert not torch.allclose(x[:, :, 1:p], z[:, :, 1:p])  # frames 1 .. p - 1 are the model's


def test_the_rollout_prefix_is_the_models_cached_rollout_from_frame_0(text_encoder):
    from filmstrip.diffusion.forcing import RolloutConfig, commit, rollout
    from filmstrip.models.conditioning import Conditioning
    from filmstrip.models.kv_cache import CacheConfig, KVCache

    null, _ = text_encoder.encode([""])
    text, mask = text_encoder.encode(["a red circle moves up"] * 6)
    torch.manual_seed(0)
    task = T2VTask(
        dit_preset("tiny", in_channels=4, causal=True), ModelSpec(), T2VConfig(rollout=0.5), null[0]
    )
    with torch.no_grad():
        for p in task.model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    z = torch.randn(6, 4, 5, 4, 4)
    clean = torch.zeros(6, 5, dtype=torch.bool)
    out, given = task._own_rollout(z, clean, text, mask, torch.Generator().manual_seed(1))
    # Replay the task's draws: which clips, the prefix length, then one noise per made frame.
    g = torch.Generator().manual_seed(1)
    rows = (torch.rand(6, generator=g) < 0.5).nonzero().flatten()
    p = int(torch.randint(2, 5, (1,), generator=g))
    noises = [torch.randn((len(rows), 4, 1, 4, 4), generator=g) for _ in range(p - 1)]
    cond = Conditioning(text[rows], mask[rows])
    cache = KVCache.for_model(task.model, CacheConfig(window=0, sink=0))
    commit(task.model, cache, [cond], [], z[rows, :, :1])
    made = torch.cat(
        list(
            rollout(
                task.model,
                cache,
                lambda k: [cond],
                [],
                noises,
                RolloutConfig(4, task.spec.shift((1, 4, 4), task.dit_cfg.patch)),
            )
        ),
        dim=2,
    )
    assert 0 < len(rows) < 6 and p == 4
    torch.testing.assert_close(out[rows, :, 1:p], made)
    others = torch.ones(6, dtype=torch.bool)
    others[rows] = False
    assert torch.equal(out[others], z[others]) and not given[others].any()  # the rest untouched
    assert given[rows, :p].all() and not given[rows, p:].any()


def test_rollout_training_refuses_a_bidirectional_model(text_encoder):
    from filmstrip.errors import TrainingError

    null, _ = text_encoder.encode([""])
    text, mask = text_encoder.encode(["a red circle"] * 4)
    task = T2VTask(
        dit_preset("tiny", in_channels=4), ModelSpec(), T2VConfig(image_fraction=0.0, rollout=1.0), null[0]
    )
    with pytest.raises(TrainingError, match="set dit.causal"):
        task.loss(task.model, {"latents": torch.randn(4, 4, 4, 4, 4), "text": text, "text_mask": mask}, 0,
                  torch.Generator().manual_seed(0))  # fmt: skip


def test_object_focus_covers_every_object_of_a_shapes_clip():
    """`task.focus = "objects"`: each clip's objects, drawn from its truth, weigh at the latent
    pixels that encode them (the object's centre on every frame falls in a weighed latent pixel
    of its latent frame) and nowhere far from them; a clip without a truth is refused."""
    from filmstrip.data.shapes import ground_truth
    from filmstrip.data.structure import WithObjectFocus
    from filmstrip.errors import InputError

    ds = ShapesDataset(ShapesConfig(num_frames=17, height=64, width=64, num_clips=4, seed=3))
    clips = [
        {"latents": torch.zeros(4, 5, 8, 8), "truth": ground_truth(ds.scene(i), ds.cfg)} for i in range(4)
    ]
    for clip in WithObjectFocus(clips, temporal=4, spatial=8):
        focus = clip["focus"]
        assert focus.shape == (5, 8, 8) and focus.max() <= 1
        near = torch.zeros(5, 8, 8, dtype=torch.bool)
        for obj in clip["truth"]["objects"]:
            reach = 1.5 * obj["radius_px"] + 5  # a square's corner at 1.41 r; a latent pixel is 8 px
            for t, (cx, cy) in enumerate(obj["positions"]):
                k = 0 if t == 0 else (t - 1) // 4 + 1
                assert focus[k, int(cy) // 8, int(cx) // 8] > 0.5
                ys, xs = torch.meshgrid(torch.arange(8) * 8 + 4.0, torch.arange(8) * 8 + 4.0, indexing="ij")
                near[k] |= ((ys - cy).abs() < reach) & ((xs - cx).abs() < reach)
        assert (focus[~near] == 0).all() and (focus == 0).float().mean() > 0.3
    with pytest.raises(InputError, match="ground truth"):
        WithObjectFocus([{"latents": torch.zeros(4, 5, 8, 8), "truth": None}], 4, 8)[0]
    # What training gets: the objects where asked, else the cache's masks, or a warning.
    vae_cfg = SimpleNamespace(temporal_factor=4, spatial_factor=8)
    assert "focus" in with_focus(clips, T2VConfig(focus="objects", focus_weight=4), vae_cfg, "cache")[0]
    with pytest.warns(UserWarning, match="have no focus masks"):
        assert with_focus(clips, T2VConfig(focus_weight=4), vae_cfg, "cache") is clips


def test_leading_latent_frames_train_as_a_shorter_clip(text_encoder):
    """`task.latent_frames = N` cuts each clip to its first N latent frames (and its per-frame
    motion, camera and structure maps to the video frames those encode): the loss is the one
    of the same batch cut by hand. Bad values get one sentence."""
    from filmstrip.errors import InputError
    from filmstrip.train.t2v_task import leading_frames

    null, _ = text_encoder.encode([""])
    text, mask = text_encoder.encode(["a red circle moves up"] * 3)
    g = torch.Generator().manual_seed(0)
    batch = {
        "latents": torch.randn(3, 4, 5, 4, 4, generator=g),
        "focus": torch.rand(3, 5, 4, 4, generator=g),
        "motion": torch.rand(3, 17, generator=g),
        "camera": torch.rand(3, 17, 3, generator=g),
        "control": torch.rand(3, 1, 17, 32, 32, generator=g),
        "text": text,
        "text_mask": mask,
    }
    cut = leading_frames(batch, 2)
    assert torch.equal(cut["latents"], batch["latents"][:, :, :2]) and torch.equal(
        cut["focus"], batch["focus"][:, :2]
    )
    assert torch.equal(cut["motion"], batch["motion"][:, :5]) and torch.equal(
        cut["camera"], batch["camera"][:, :5]
    )
    assert torch.equal(cut["control"], batch["control"][:, :, :5]) and leading_frames(batch, 5) is batch
    losses = []
    batch.pop("control"), cut.pop("control")  # a DiT without a ControlNet refuses structure maps
    for frames, given in ((2, batch), (0, cut)):
        torch.manual_seed(0)
        cfg = T2VConfig(image_fraction=0.0, frame_noise=0.5, focus_weight=3.0, latent_frames=frames)
        task = T2VTask(dit_preset("tiny", in_channels=4), ModelSpec(), cfg, null[0])
        losses.append(task.loss(task.model, given, 0, torch.Generator().manual_seed(1))[0])
    assert losses[0].item() == losses[1].item()
    with pytest.raises(InputError, match="latent_frames is a count"):
        T2VConfig(latent_frames=-1)
    with pytest.raises(InputError, match="exclude each other"):
        T2VConfig(latent_frames=2, keyframes=0.5)
    with pytest.raises(InputError, match="task.focus is masks or objects"):
        T2VConfig(focus="stars")


@pytest.mark.parametrize(
    ("field", "message"),
    [
        (dict(frames="17"), "frames is a whole number, got '17'"),
        (dict(steps=2.5), "steps is a whole number, got 2.5"),
        (dict(height=True), "height is a whole number, got True"),
        (dict(steps=0), "cannot sample in 0 steps"),
        (dict(seed=-1), r"the seed must be in \[0, 2\^32\)"),
        (dict(text_scale=float("nan")), "the guidance scale must be a finite number"),
        (dict(lag=-0.5), "the pyramid lag is a share of the run"),
    ],
)
def test_a_bad_generate_config_gets_one_sentence(field, message):
    with pytest.raises(InputError, match=message):
        GenerateConfig(**field)
    GenerateConfig(frames=np.int64(9), seed=np.uint32(3))  # numpy's integers are whole numbers too


def test_a_model_trained_on_a_bundled_vae_by_name_records_the_name(tmp_path, monkeypatch):
    """`--vae vae3d` (a bundled name) was recorded as CWD/vae3d, so the model could not be
    loaded (or generate) from anywhere: the name is kept, a path made absolute. And a set of
    two clips trains (the preview grid took three captions: IndexError)."""
    from filmstrip.checkpoint import BUNDLED_DIR, reference

    monkeypatch.chdir(tmp_path)
    args = [
        "train",
        "t2v",
        "--vae",
        "vae3d",
        "--preset",
        "tiny",
        "--clips",
        "2",
        "--frames",
        "5",
        "--size",
        "32",
    ]
    args += ["--batch-size", "2", "--sample-every", "0", "--ckpt-every", "0", "--steps", "1", "--run", "run"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert load_model(tmp_path / "run" / "model", "dit")[0]["spec"]["vae"] == "vae3d"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert load_pipeline(tmp_path / "run" / "model").vae.cfg == load_pipeline().vae.cfg
    # The run's folder stands for its model; a training checkpoint is not one, and says where it is.
    assert load_pipeline(tmp_path / "run").dit.cfg == load_pipeline(tmp_path / "run" / "model").dit.cfg
    info = CliRunner().invoke(main, ["info", str(tmp_path / "run")]).output
    assert (
        "run: a training run at step 1 of 1 (1 checkpoint kept" in info and "latents of the VAE vae3d" in info
    )
    assert "latents: a latent cache of 2 clips (complete)" in info and "last logged, step 1: loss " in info
    step = next((tmp_path / "run" / "checkpoints").iterdir())
    with pytest.raises(
        CheckpointError, match=f"a training checkpoint, .* the run's model is {tmp_path / 'run' / 'model'}"
    ):
        load_pipeline(step)
    assert reference("vae_natural", "vae3d") == "vae_natural" and reference(None, "vae3d") == "vae3d"
    assert reference(BUNDLED_DIR / "vae2d", "vae3d") == "vae2d"
    assert reference("../run/model", "vae3d") == str(tmp_path / "run" / "model")


class _Buckets(torch.utils.data.Dataset):
    """A latent set of two buckets, as a folder's cache holds them."""

    shapes = {"wide": (4, 3, 8, 12), "square": (4, 2, 8, 8)}
    groups = ["wide", "square", "wide", "wide"]

    def __len__(self):
        return len(self.groups)

    def item_groups(self):
        return self.groups

    def __getitem__(self, i):
        return {"latents": torch.zeros(self.shapes[self.groups[i]])}


def test_the_model_records_the_shapes_it_trained_on_and_generates_them_by_default(
    tiny_bundle, tiny_vae, text_encoder, tmp_path
):
    from filmstrip.checkpoint import save_model
    from filmstrip.train.recipes import trained_shapes

    f, tf = tiny_vae.cfg.spatial_factor, tiny_vae.cfg.temporal_factor
    shapes = trained_shapes(_Buckets(), tiny_vae)
    assert shapes == [[1 + 2 * tf, 8 * f, 12 * f, 3], [1 + tf, 8 * f, 8 * f, 1]]  # most clips first
    assert trained_shapes(_Buckets(), tiny_vae, latent_frames=2)[0][0] == 1 + tf  # trained on leading frames
    null, _ = text_encoder.encode([""])
    task = T2VTask(
        dit_preset("tiny", in_channels=4), ModelSpec(vae="vae"), T2VConfig(), null[0], data_shapes=shapes
    )
    config, meta = task.export(task.model)
    save_model(tmp_path / "m", "dit", config, task.model.state_dict(), meta)
    (tmp_path / "m" / "vae").symlink_to(tiny_bundle.parent / "vae")

    def run(*extra):
        out = tmp_path / f"{len(list(tmp_path.glob('*.mp4')))}.mp4"
        args = [
            "generate",
            "a red circle moves up",
            "-c",
            str(tmp_path / "m"),
            "-o",
            str(out),
            "--steps",
            "2",
        ]
        result = CliRunner().invoke(main, [*args, *extra])
        assert result.exit_code == 0, result.output
        info = probe(out)
        return (info.num_frames, info.height, info.width), result.output.count(
            "Warning: the model was trained"
        )

    assert run() == ((1 + 2 * tf, 8 * f, 12 * f), 0)  # its most common shape, unasked
    assert run("--size", f"{8 * f}x{8 * f}", "--frames", str(1 + tf)) == ((1 + tf, 8 * f, 8 * f), 0)
    # A size it never saw, or a clip longer than any it saw: said once (the CLI and the
    # pipeline both check the request).
    assert run("--size", str(16 * f), "--frames", str(1 + tf)) == ((1 + tf, 16 * f, 16 * f), 1)
    assert run("--frames", str(1 + 4 * tf)) == ((1 + 4 * tf, 8 * f, 12 * f), 1)
    wrong = CliRunner().invoke(
        main, ["generate", "a red circle", "-c", str(tmp_path / "m"), "--size", "48x20"]
    )
    assert wrong.exit_code == 1 and "cannot generate 48x20 (width x height)" in wrong.output
    for bad, words in (("12x", "give N (N x N) or WxH"), ("0", "positive width and height"), ("ax3", "WxH")):
        result = CliRunner().invoke(main, ["generate", "a red circle", "--size", bad])
        assert result.exit_code == 2 and words in result.output, result.output


def test_a_model_moved_with_its_vae_beside_it_loads(tiny_bundle, text_encoder, tmp_path):
    import shutil

    from filmstrip.checkpoint import save_model

    shutil.copytree(tiny_bundle.parent / "vae", tmp_path / "myvae")
    null, _ = text_encoder.encode([""])
    task = T2VTask(
        dit_preset("tiny", in_channels=4), ModelSpec(vae=str(tmp_path / "myvae")), T2VConfig(), null[0]
    )
    config, meta = task.export(task.model)
    save_model(tmp_path / "m", "dit", config, task.model.state_dict(), meta)
    assert load_pipeline(tmp_path / "m").vae.cfg.latent_channels == 4
    (tmp_path / "myvae").rename(tmp_path / "elsewhere")  # the recorded path is gone
    with pytest.raises(InputError, match="'myvae' beside it"):
        load_pipeline(tmp_path / "m")
    (tmp_path / "elsewhere").rename(tmp_path / "m" / "myvae")
    assert load_pipeline(tmp_path / "m").vae.cfg.latent_channels == 4
