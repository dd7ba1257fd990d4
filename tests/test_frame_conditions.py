"""Image, keyframe and video conditions: placement, exactness, guidance with separate image and
text scales, training with random frame conditioning, the cache of single-frame latents, and
every mode end to end through the CLI with a tiny checkpoint."""

import pytest
import torch
from click.testing import CliRunner

from filmstrip.cli import main
from filmstrip.data import ShapesConfig, ShapesDataset
from filmstrip.data.latents import LatentDataset, build_latent_cache, collate_latents, keyframe_indices
from filmstrip.diffusion.frames import with_frames
from filmstrip.diffusion.guidance import guided
from filmstrip.diffusion.sampling import schedule
from filmstrip.diffusion.spec import ModelSpec
from filmstrip.errors import InputError
from filmstrip.io import probe, read_video, write_video
from filmstrip.models.conditioning import Conditioning
from filmstrip.models.dit import VideoDiT
from filmstrip.models.dit import preset as dit_preset
from filmstrip.pipelines.conditions import ImageCondition, VideoCondition, prepare_frames
from filmstrip.pipelines.denoise import denoise, initial_noise, latent_shape, place_frames
from filmstrip.pipelines.extend import extend
from filmstrip.pipelines.generate import GenerateConfig, generate, load_pipeline
from filmstrip.train.t2v_task import T2VConfig, T2VTask

GEN = GenerateConfig(frames=9, height=32, width=32, steps=3)


def clip(frames=9, size=32, seed=0):
    item = ShapesDataset(ShapesConfig(num_frames=frames, height=size, width=size, num_clips=1, seed=seed))[0]
    return item["video"], item["caption"]


class Recorder(torch.nn.Module):
    """A model that records what it is given and predicts a fixed function of its input."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, t, cond, times=None):
        self.calls.append({"x": x.clone(), "t": t.clone(), "times": times, "cond": cond})
        return x * 0.5 + t[:, None, :, None, None]


# ---- the frame paths around the model ---------------------------------------------------
def test_keyframes_are_appended_at_their_time_and_their_prediction_dropped():
    model = Recorder()
    x, t = torch.randn(2, 4, 3, 2, 2), torch.rand(2, 3)
    keys = torch.randn(2, 4, 2, 2, 2)
    cond = Conditioning(keyframes=keys, key_times=torch.tensor([1.25, 2.0]))
    v = with_frames(model, x, t, cond)
    call = model.calls[-1]
    assert v.shape == x.shape and torch.equal(v, x * 0.5 + t[:, None, :, None, None])
    assert call["x"].shape[2] == 5 and torch.equal(call["x"][:, :, 3:], keys)
    assert torch.equal(call["t"][:, 3:], torch.zeros(2, 2)) and torch.equal(call["t"][:, :3], t)
    assert call["times"].tolist() == [0.0, 1.0, 2.0, 1.25, 2.0]
    assert not call["cond"].has_frames  # the model itself never sees frame conditions


def test_unseen_frames_are_shown_as_unconditioned_frames_at_the_rows_level():
    model = Recorder()
    x, t = torch.randn(1, 4, 3, 2, 2), torch.tensor([[0.0, 0.7, 0.7]])
    clean, noise = torch.randn(1, 4, 3, 2, 2), torch.randn(1, 4, 3, 2, 2)
    unseen = torch.tensor([[True, False, False]])
    with_frames(model, x, t, Conditioning(unseen=unseen, unseen_latents=clean, unseen_noise=noise))
    call = model.calls[-1]
    torch.testing.assert_close(call["x"][:, :, 0], 0.3 * clean[:, :, 0] + 0.7 * noise[:, :, 0])
    assert torch.equal(call["x"][:, :, 1:], x[:, :, 1:]) and torch.equal(call["t"], t[:, 1:2].expand(1, 3))


def test_the_dit_refuses_frame_conditions_and_reads_time_positions():
    dit = VideoDiT(dit_preset("tiny", in_channels=4, frame_embedding=True)).eval()
    with torch.no_grad():
        for p in dit.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        z, t = torch.randn(1, 4, 3, 8, 8), torch.rand(1, 3)
        cond = Conditioning(torch.randn(1, 2, 384), torch.ones(1, 2, dtype=torch.bool))
        with pytest.raises(InputError, match="with_frames"):
            dit(z, t, Conditioning(keyframes=z[:, :, :1], key_times=torch.tensor([2.0])))
        plain = dit(z, t, cond)
        torch.testing.assert_close(dit(z, t, cond, times=torch.arange(3.0)), plain)
        assert (dit(z, t, cond, times=torch.tensor([0.0, 1.0, 3.5])) - plain).abs().amax() > 1e-4
        with pytest.raises(InputError, match="one position per latent frame"):
            dit(z, t, cond, times=torch.arange(2.0))


def test_guidance_with_all_scales_one_is_the_conditional_prediction_and_levels_batch_by_keyframes():
    model = Recorder()
    x, t = torch.randn(2, 4, 3, 2, 2), torch.rand(2, 3)
    text = Conditioning(torch.randn(2, 2, 8), torch.ones(2, 2, dtype=torch.bool))
    null_text = Conditioning(torch.zeros(2, 1, 8), torch.ones(2, 1, dtype=torch.bool))
    keys = Conditioning(keyframes=torch.randn(2, 4, 1, 2, 2), key_times=torch.tensor([2.0]))
    unseen = Conditioning(
        unseen=torch.tensor([[True, False, False]] * 2),
        unseen_latents=torch.randn(2, 4, 3, 2, 2),
        unseen_noise=torch.randn(2, 4, 3, 2, 2),
    )
    levels = [unseen.merge(null_text), keys.merge(null_text), keys.merge(text)]
    full = with_frames(model, x, t, levels[2])
    torch.testing.assert_close(guided(model, levels, [1.0, 1.0])(x, t), full)
    model.calls.clear()
    v = guided(model, levels, [2.0, 3.0])(x, t)
    # Two forwards: the level without keyframes alone, the two with them as one batch.
    assert sorted(c["x"].shape[0] for c in model.calls) == [2, 4]
    v0, v1 = with_frames(model, x, t, levels[0]), with_frames(model, x, t, levels[1])
    torch.testing.assert_close(v, v0 + 2.0 * (v1 - v0) + 3.0 * (full - v1))


def test_conditionings_with_frames_cat_merge_and_select_rows():
    a = Conditioning(keyframes=torch.randn(2, 4, 1, 2, 2), key_times=torch.tensor([1.0]))
    b = Conditioning(keyframes=torch.randn(1, 4, 1, 2, 2), key_times=torch.tensor([1.0]))
    both = Conditioning.cat([a, b])
    assert both.keyframes.shape[0] == 3 and both.rows(slice(1, 3)).keyframes.shape[0] == 2
    with pytest.raises(InputError, match="different keyframe positions"):
        Conditioning.cat([a, Conditioning(keyframes=b.keyframes, key_times=torch.tensor([2.0]))])
    u = Conditioning(unseen=torch.ones(1, 3, dtype=torch.bool), unseen_latents=torch.ones(1, 4, 3, 2, 2),
                     unseen_noise=torch.ones(1, 4, 3, 2, 2))  # fmt: skip
    two = Conditioning.cat([u, Conditioning(unseen=torch.zeros(2, 3, dtype=torch.bool),
                            unseen_latents=torch.zeros(2, 4, 3, 2, 2), unseen_noise=torch.zeros(2, 4, 3, 2, 2))])  # fmt: skip
    assert two.unseen.tolist() == [[True] * 3, [False] * 3, [False] * 3]
    merged = a.merge(Conditioning(keyframes=torch.randn(2, 4, 2, 2, 2), key_times=torch.tensor([2.0, 3.0])))
    assert merged.key_times.tolist() == [1.0, 2.0, 3.0] and merged.num_keyframes == 3


# ---- placement, exactness, strength -------------------------------------------------------
def test_in_place_frames_come_back_exactly_under_image_guidance():
    """Frame 0 given: its latent is returned bit for bit, the model sees it at t = 0 in the
    conditioned levels and as an unconditioned frame (at the rest's level) in the null one."""
    model = Recorder()
    x = torch.randn(1, 4, 3, 2, 2)
    clean = torch.randn(4, 2, 2)
    null = Conditioning(unseen=torch.tensor([[True, False, False]]),
                        unseen_latents=torch.zeros(1, 4, 3, 2, 2).index_copy(2, torch.tensor([0]), clean[None, :, None]),
                        unseen_noise=x.clone())  # fmt: skip
    x, sched = place_frames(x, schedule(4, 3, shift=3.0), {0: clean})
    out = denoise(model, x, sched, [null, Conditioning()], [2.5])
    assert torch.equal(out[0, :, 0], clean)
    for call in model.calls:
        t = call["t"]
        assert (t[1, 0] == 0) and (t[0, 0] == t[0, 1]) and (t[:, 1:] > 0).all()


def test_strength_starts_the_frame_partly_noised_and_lets_it_move():
    x = torch.randn(1, 4, 3, 2, 2)
    clean = torch.randn(4, 2, 2)
    sched = schedule(4, 3)
    placed, scaled = place_frames(x, sched, {0: (clean, 0.75)})
    torch.testing.assert_close(scaled[:, 0], 0.25 * sched[:, 0])
    torch.testing.assert_close(placed[0, :, 0], 0.75 * clean + 0.25 * x[0, :, 0])
    out = denoise(lambda x, t, c: torch.ones_like(x), placed, scaled, [Conditioning()], [])
    assert not torch.equal(out[0, :, 0], clean)


def test_condition_placement_at_each_supported_frame(tiny_bundle):
    pipe = load_pipeline(tiny_bundle)
    video, _ = clip()
    shape = latent_shape(pipe, 2, 9, 32, 32)
    noise = initial_noise(shape, 0)
    factor = pipe.vae.cfg.temporal_factor
    # Frame 0: in place, the latent of the image alone (= the clip's own first latent frame).
    plan = prepare_frames(pipe, [ImageCondition(video[:, 0], 0)], 9, noise)
    z = pipe.spec.normalize(pipe.vae.encode(video[None]))
    assert list(plan.in_place) == [0] and plan.pair[1].keyframes is None
    torch.testing.assert_close(plan.in_place[0][0], z[:, :, 0].expand(2, -1, -1, -1), atol=1e-5, rtol=1e-5)
    assert plan.pair[0].unseen[:, 0].all() and not plan.pair[0].unseen[:, 1:].any()
    # A prefix of 4k + 1 frames: in place, exactly the clip's first k + 1 latent frames.
    plan = prepare_frames(pipe, [VideoCondition(video[:, : factor + 1], 0)], 9, noise)
    assert sorted(plan.in_place) == [0, 1]
    torch.testing.assert_close(plan.in_place[1][0], z[:, :, 1].expand(2, -1, -1, -1), atol=1e-5, rtol=1e-5)
    # Any other frame, and the frames of a prefix past its last 4k + 1: appended keyframes.
    for index, time in ((8, 8 / factor), (-1, 8 / factor), (3, 3 / factor)):
        plan = prepare_frames(pipe, [ImageCondition(video[:, index], index)], 9, noise)
        assert not plan.in_place and plan.pair[1].key_times.tolist() == [time]
        assert plan.pair[1].keyframes.shape == (2, 4, 1, *shape[3:])
    plan = prepare_frames(pipe, [VideoCondition(video[:, :3], 0)], 9, noise)
    assert list(plan.in_place) == [0] and plan.pair[1].key_times.tolist() == [1 / factor, 2 / factor]
    # One list per row: the same frames from different images; different frames are refused.
    other, _ = clip(seed=1)
    plan = prepare_frames(
        pipe, [[ImageCondition(video[:, 0], 0)], [ImageCondition(other[:, 0], 0)]], 9, noise
    )
    z_other = pipe.spec.normalize(pipe.vae.encode(other[None, :, :1]))
    torch.testing.assert_close(plan.in_place[0][0][1], z_other[0, :, 0], atol=1e-5, rtol=1e-5)
    with pytest.raises(InputError, match="same frames at the same strengths"):
        prepare_frames(pipe, [[ImageCondition(video[:, 0], 0)], [ImageCondition(other[:, 0], -1)]], 9, noise)
    with pytest.raises(InputError, match="one per row"):
        prepare_frames(pipe, [[ImageCondition(video[:, 0], 0)]] * 3, 9, noise)


def test_generate_returns_the_given_first_frame_latent_and_keyframes_run(tiny_bundle):
    pipe = load_pipeline(tiny_bundle)
    video, caption = clip()
    cfg = GenerateConfig(frames=9, height=32, width=32, steps=3, image_scale=2.0)
    out = generate(pipe, [caption, caption], cfg, conditions=[ImageCondition(video[:, 0], 0)])
    # The decoded first frame is the VAE's reconstruction of the given image.
    recon = pipe.vae.decode(pipe.vae.encode(video[None, :, :1]), 1).clamp(-1, 1)
    torch.testing.assert_close(out[:, :, 0], recon[:, :, 0].expand(2, -1, -1, -1), atol=2e-3, rtol=0)
    both = generate(
        pipe, [caption], cfg, conditions=[ImageCondition(video[:, 0], 0), ImageCondition(video[:, -1], -1)]
    )
    assert both.shape == (1, 3, 9, 32, 32) and torch.isfinite(both).all()
    assert not torch.equal(both, out[:1])


def test_extension_keeps_the_clip_and_adds_the_new_frames(tiny_bundle):
    pipe = load_pipeline(tiny_bundle)
    video, caption = clip(frames=12)
    longer = extend(pipe, video, [caption], GEN, context=5)
    assert longer.shape == (1, 3, 12 + 9 - 5, 32, 32)
    assert torch.equal(longer[0, :, :12], video)
    # By default about half the window is context (5 of 9 frames, the form 4k + 1).
    assert extend(pipe, video, [caption], GEN).shape == longer.shape
    # One clip per prompt: each prompt continues its own clip.
    other, other_caption = clip(frames=12, seed=1)
    both = extend(pipe, torch.stack([video, other]), [caption, other_caption], GEN, context=5)
    assert both.shape == (2, 3, 16, 32, 32)
    assert torch.equal(both[0, :, :12], video) and torch.equal(both[1, :, :12], other)


@pytest.mark.parametrize(
    ("conditions", "message"),
    [
        (lambda v: [ImageCondition(v[:, 0], 9)], "outside a clip of 9 frames"),
        (lambda v: [ImageCondition(v[:, 0], -10)], "outside a clip of 9 frames"),
        (lambda v: [ImageCondition(v[:, 0], 0), ImageCondition(v[:, 1], 0)], "two conditions give frame 0"),
        (lambda v: [VideoCondition(v[:, :5], 0), ImageCondition(v[:, 1], 3)], "two conditions give frame 3"),
        (lambda v: [VideoCondition(v[:, :5], 6)], "runs past the end"),
        (lambda v: [ImageCondition(v[:, 0], 0, strength=1.5)], r"strength is in \[0, 1\]"),
        (lambda v: [ImageCondition(v[:, 0], 0, strength=float("nan"))], r"strength is in \[0, 1\]"),
        (lambda v: [ImageCondition(v[:, 0], 4, strength=0.5)], "only frames from the start"),
        (lambda v: [ImageCondition(v[0], 0)], r"is \(3, H, W\)"),
        (lambda v: [ImageCondition(((v[:, 0] + 1) * 127.5).byte(), 0)], "float pixels in .* got torch.uint8"),
        (lambda v: [ImageCondition((v[:, 0] + 1) * 127.5, 0)], r"pixels are in \[-1, 1\], got \d+ to \d+"),
        (lambda v: [VideoCondition(v[:, :5] * float("nan"), 0)], "NaN or infinite pixels"),
    ],
)
def test_bad_conditions_get_one_clear_sentence(tiny_bundle, conditions, message):
    pipe = load_pipeline(tiny_bundle)
    video, _ = clip()
    with pytest.raises(InputError, match=message):
        prepare_frames(pipe, conditions(video), 9, initial_noise(latent_shape(pipe, 1, 9, 32, 32), 0))


def test_prompts_are_a_list_and_the_negative_one_text(tiny_bundle):
    pipe = load_pipeline(tiny_bundle)
    with pytest.raises(InputError, match=r"prompts are a list, one video each: pass \['a red circle'\]"):
        generate(pipe, "a red circle", GEN)
    with pytest.raises(InputError, match="one text for every video, got a list"):
        generate(pipe, ["a red circle", "a blue square"], GEN, negative=["dark", "blurry"])


def test_words_a_shapes_model_never_read_are_named(tiny_bundle):
    """A model trained on `shapes` captions is told apart by its checkpoint; a prompt with
    words outside their vocabulary gets one warning naming them (every caption's words are in
    it: tests/test_data_shapes.py)."""
    import warnings
    from dataclasses import replace

    from filmstrip.errors import FilmstripWarning
    from filmstrip.pipelines.generate import check_request

    pipe = replace(load_pipeline(tiny_bundle), trained_on="shapes 9x32x32, 64 clips")
    with pytest.warns(
        FilmstripWarning, match=r"never read 'beach', 'cat', 'runs': it was trained on `shapes`"
    ):
        check_request(pipe, ["A cat runs on the beach."], GEN)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_request(
            pipe, ["A small red circle drifts up and to the left, while a square stays still."], GEN
        )
        check_request(replace(pipe, trained_on="folder:/my/clips 17x64x64"), ["a cat runs"], GEN)


def test_a_clip_to_redraw_is_refused_in_another_pixel_convention(tiny_bundle):
    from filmstrip.pipelines.edit import video_to_video

    pipe = load_pipeline(tiny_bundle)
    video, caption = clip()
    as_read = ((video + 1) * 127.5).round().byte()[None]  # what read_video gives by default
    with pytest.raises(InputError, match="a clip to encode takes float pixels .* dtype=torch.float32"):
        video_to_video(pipe, as_read, [caption], GEN, 0.5)


def test_bad_extensions_get_one_clear_sentence(tiny_bundle):
    pipe = load_pipeline(tiny_bundle)
    video, caption = clip(frames=4)
    with pytest.raises(InputError, match="fewer than the 5 context frames"):
        extend(pipe, video, [caption], GEN, context=5)
    with pytest.raises(InputError, match="4k \\+ 1"):
        extend(pipe, video, [caption], GEN, context=2)
    with pytest.raises(InputError, match="leaves nothing new"):
        extend(pipe, video, [caption], GEN, context=9)
    with pytest.raises(InputError, match=r"a clip to extend is \(3, T, H, W\) or \(B, 3, T, H, W\)"):
        extend(pipe, video[0], [caption], GEN, context=1)
    with pytest.raises(InputError, match="2 clips for 3 prompts: give one clip, or one per prompt"):
        extend(pipe, torch.stack([video, video]), [caption] * 3, GEN, context=1)


def test_images_of_another_size_are_resized_and_cropped_with_a_warning(tiny_bundle):
    pipe = load_pipeline(tiny_bundle)
    wide = torch.rand(3, 48, 96) * 2 - 1
    with pytest.warns(UserWarning, match="96x48 condition frame was resized and centre-cropped to 32x32"):
        plan = prepare_frames(
            pipe, [ImageCondition(wide, 0)], 9, initial_noise(latent_shape(pipe, 1, 9, 32, 32), 0)
        )
    assert plan.in_place[0][0].shape == (1, 4, 4, 4)


# ---- training ----------------------------------------------------------------------------
def test_frame_conditioned_training_masks_given_frames_and_overfits(text_encoder):
    torch.manual_seed(0)
    cfg = T2VConfig(first_frame=0.4, prefix=0.3, keyframes=0.5, text_dropout=0.0, image_fraction=0.0)
    null, _ = text_encoder.encode([""])
    task = T2VTask(dit_preset("tiny", in_channels=4, patch=(1, 1, 1)), ModelSpec(), cfg, null[0])
    b = 8
    one = torch.randn(1, 4, 3, 8, 8)  # one clip, repeated: a batch to overfit
    batch = {
        "latents": one.expand(b, -1, -1, -1, -1),
        "text": torch.randn(1, 4, 384).expand(b, -1, -1),
        "text_mask": torch.ones(b, 4, dtype=torch.bool),
        "frames": one[:, :, 1:].permute(0, 2, 1, 3, 4).expand(b, -1, -1, -1, -1),
        "frame_times": torch.tensor([[1.0, 2.0]] * b),
    }
    # Given frames carry no loss: the gradient with respect to the prediction is zero there.
    seen = {}

    def spy(x, t, cond, times=None):
        out = task.model(x, t, cond, times=times)
        out.retain_grad()
        seen.setdefault("calls", []).append((t.detach(), out, times))
        return out

    loss, logs = task.loss(spy, batch, 0, torch.Generator().manual_seed(1))
    loss.backward()
    assert "loss_key" in logs and "loss_video" in logs
    keyed = [c for c in seen["calls"] if c[2] is not None]
    assert keyed and keyed[0][1].shape[2] > 3  # keyframes appended
    for t, out, times in seen["calls"]:
        frames = 3
        clean = t[:, :frames] == 0
        grad = out.grad[:, :, :frames].abs().sum(dim=(1, 3, 4))
        assert (grad[clean] == 0).all() and (grad[~clean] > 0).all()
        if times is not None:
            assert (t[:, frames:] == 0).all() and (out.grad[:, :, frames:] == 0).all()
    # And the model learns under it.
    opt = torch.optim.AdamW(task.model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for step in range(300):
        loss, _ = task.loss(task.model, batch, step, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-20:]) / 20 < sum(losses[:20]) / 20 / 1.6, losses[::20]


def test_frame_shares_are_checked():
    with pytest.raises(InputError, match="first_frame \\+ task.prefix"):
        T2VConfig(first_frame=0.7, prefix=0.5)
    with pytest.raises(InputError, match="keyframes is a share"):
        T2VConfig(keyframes=1.5)


def test_latent_cache_stores_single_frame_latents(tmp_path, tiny_vae, text_encoder):
    data = ShapesDataset(ShapesConfig(num_frames=9, height=32, width=32, num_clips=3))
    root = build_latent_cache(data, tiny_vae, text_encoder, tmp_path / "c", 3, shard_size=2, frame_stride=4)
    cache = LatentDataset(root)
    assert (
        cache.has_frame_latents and keyframe_indices(9, 4) == [4, 8] and keyframe_indices(10, 4) == [4, 8, 9]
    )
    item = cache[2]
    with torch.no_grad():
        alone = tiny_vae.encode(data[2]["video"][None, :, 8:9])[0, :, 0]
    torch.testing.assert_close(item["frames"][1], alone, atol=2e-2, rtol=0)  # stored as fp16
    assert item["frame_times"].tolist() == [
        4 / tiny_vae.cfg.temporal_factor,
        8 / tiny_vae.cfg.temporal_factor,
    ]
    batch = collate_latents([cache[0], cache[1]])
    assert batch["frames"].shape == (2, 2, *item["frames"].shape[1:]) and batch["frame_times"].shape == (2, 2)


# ---- the CLI ------------------------------------------------------------------------------
def test_generate_cli_with_images_keyframes_and_extension(tiny_bundle, tmp_path):
    import cv2

    video, caption = clip()
    frames = ((video.permute(1, 2, 3, 0) + 1) * 127.5).round().byte().numpy()
    first, last, wide = tmp_path / "first.png", tmp_path / "last.png", tmp_path / "wide.png"
    cv2.imwrite(str(first), frames[0][..., ::-1])
    cv2.imwrite(str(last), frames[-1][..., ::-1])
    cv2.imwrite(str(wide), cv2.resize(frames[0], (64, 40))[..., ::-1])
    source = write_video(tmp_path / "in.mp4", video, fps=8)
    out = tmp_path / "out.mp4"
    base = [
        "generate",
        caption,
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
    runner = CliRunner()

    def run(*extra):
        return runner.invoke(main, [*base, *extra])

    for extra in (["--image", str(first)], ["--keyframe", f"0:{first}", "--keyframe", f"-1:{last}", "--image-cfg", "2"],
                  ["--image", str(first), "--image-strength", "0.8"]):  # fmt: skip
        result = run(*extra)
        assert result.exit_code == 0, result.output
        assert probe(out).num_frames == 9
    result = run("--image", str(wide))
    assert result.exit_code == 0 and "64x40 resized and centre-cropped to 32x32" in result.output
    result = run("--extend", str(source), "--context", "5")
    assert result.exit_code == 0, result.output
    assert probe(out).num_frames == 9 + 9 - 5
    given, _ = read_video(out, num_frames=9)
    assert (given.float() - read_video(source)[0].float()).abs().mean() < 8  # the clip comes first
    errors = {
        ("--keyframe", f"9:{last}"): "outside a clip of 9 frames",
        ("--keyframe", f"0:{last}", "--image", str(first)): "two conditions give frame 0",
        ("--keyframe", "last.png"): "give FRAME:PATH",
        ("--image", str(tmp_path / "missing.png")): "no such image file",
        ("--image", str(source)): "not an image",
        ("--image", str(first), "--image-strength", "2"): "strength is in [0, 1]",
        ("--extend", str(source), "--context", "13"): "leaves nothing new in a window of 9 frames",
        ("--extend", str(source), "--image", str(first)): "not several",
        ("--context", "5"): "--context goes with --extend",
    }
    for extra, message in errors.items():
        result = run(*extra)
        assert result.exit_code != 0 and message in result.output, (extra, result.output)


def test_generate_extend_uses_the_bundled_causal_model_unless_told(tmp_path, monkeypatch):
    import filmstrip.pipelines.generate as generate_module
    from filmstrip.io import read_video, write_video

    real, loaded = generate_module.load_pipeline, []
    monkeypatch.setattr(
        generate_module, "load_pipeline", lambda path=None, **kw: loaded.append(path) or real(path, **kw)
    )
    source = write_video(tmp_path / "in.mp4", torch.zeros(3, 9, 32, 32), fps=8)
    base = ["generate", "a red circle moves to the right", "--frames", "9", "--size", "32", "--steps", "1"]
    for extra, model in ((["--extend", str(source), "--context", "5"], "t2v_causal"), ([], None)):
        result = CliRunner().invoke(main, [*base, *extra, "-o", str(tmp_path / "out.mp4")])
        assert result.exit_code == 0, result.output
        assert loaded[-1] == model
    assert read_video(tmp_path / "out.mp4")[0].shape[1] == 9


def test_eval_conditioning_cli(tiny_bundle, tmp_path):
    import json

    out = tmp_path / "cond.json"
    args = ["eval", "conditioning", "-c", str(tiny_bundle), "--scenes", "2", "--frames", "9", "--size", "32",
            "--steps", "2", "--lag", "0.5", "--context", "5", "--json", str(out)]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    assert set(rows) == {"i2v", "first-last", "extend"} and len(rows["i2v"]["rows"]) == 2
    assert "psnr_first" in rows["i2v"]["summary"] and "end_error_p95" in rows["first-last"]["summary"]
    result = CliRunner().invoke(main, [*args[:-2], "--scenes", "1", "--grid", "1,2", "2", "--json", str(out)])
    assert result.exit_code == 0, result.output
    grid = json.loads(out.read_text())["grid"]
    assert [(r["text_scale"], r["image_scale"]) for r in grid] == [(1.0, 2.0), (2.0, 2.0)]
    assert all("flicker" in r for r in grid)
    result = CliRunner().invoke(main, [*args[:-2], "--scenes", "1", "--grid", "1", "1,2", "--grid-mode", "last",
                                       "--json", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert all("end_error_p95" in r and "direction" in r for r in json.loads(out.read_text())["grid"])
    result = CliRunner().invoke(main, [*args[:-2], "--scenes", "2", "--mode", "v2v", "--strengths", "0,1",
                                       "--mode", "edit", "--json", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    edits = json.loads(out.read_text())
    assert [r["strength"] for r in edits["v2v"]] == [0.0, 1.0] and "within_2px" in edits["edit"]["summary"]
    result = CliRunner().invoke(main, [*args[:-2], "--scenes", "1", "--mode", "edit", "--no-share",
                                       "--edit-strength", "1", "--ceiling", "--json", str(out)])  # fmt: skip
    assert result.exit_code == 0 and "colour_and_within_2px" in json.loads(out.read_text())["edit"]["summary"]
    assert "a perfect model through the VAE" in result.output
    assert "within_2px" in json.loads(out.read_text())["edit_vae_ceiling"]
    result = CliRunner().invoke(main, [*args[:-4], "--context", "9"])
    assert result.exit_code != 0 and "context must leave frames to draw: 1 to 8 of the 9" in result.output
    # The given clip's speed is told in extension only, and only to a model that takes it.
    result = CliRunner().invoke(main, [*args[:-2], "--mode", "i2v", "--given-speed"])
    assert result.exit_code != 0 and "use it with --mode extend" in result.output
    result = CliRunner().invoke(main, [*args[:-2], "--mode", "extend", "--given-speed"])
    assert result.exit_code != 0 and "not trained with a motion condition" in result.output


def test_the_conditioning_evaluator_scores_the_truth_as_perfect():
    """Scored against itself, a ground-truth clip has no position error at its given frames,
    monotone straight paths, its own directions, seams at its own speed and no flicker."""
    from filmstrip.eval.conditioning import (
        ConditionSuite,
        background_flicker,
        score_row,
        suite_scenes,
        summarize,
    )

    cfg = ConditionSuite(num_scenes=12)
    items = suite_scenes(cfg)
    rows = {
        mode: [score_row(mode, it["video"], it, cfg) for it in items]
        for mode in ("i2v", "first-last", "extend", "last")
    }
    i2v, ends, ext, last = (summarize(m, r) for m, r in rows.items())
    assert last["end_error_p95"] == 0 and last["colour"] == 1 and last["direction"] > 0.9
    assert i2v["start_error_p95"] == 0 and i2v["found"] == 1 and i2v["colour"] == 1 and i2v["flicker"] < 0.5
    assert i2v["direction"] > 0.9 and i2v["shape"] > 0.9  # the adherence evaluator's own accuracy
    assert ends["end_error_p95"] == 0 and ends["monotone"] > 0.9
    assert ext["direction"] == ext["seam_within_20pct"] == ext["speed_within_10pct"] == 1
    assert ext["steps_even_20pct"] == 1
    assert abs(ext["speed_slope"] - 1) < 0.02 and ext["speed_rank_correlation"] > 0.95
    assert ext["speeds_measured"] >= 5
    from filmstrip.eval.conditioning import edit_row, summarize_edits

    perfect = summarize_edits([edit_row(it["recoloured_video"], it, cfg.fps) for it in items])
    # Colours segment a little differently at the edges: a tenth of a pixel, not two.
    assert perfect["colour"] == perfect["within_2px"] == perfect["colour_and_within_2px"] == 1.0
    assert perfect["position_error_mean"] < 0.3
    unedited = summarize_edits([edit_row(it["video"], it, cfg.fps) for it in items])
    assert unedited["colour"] == 0 and unedited["within_2px"] == 0
    noisy = (items[0]["video"] + 0.1 * torch.randn_like(items[0]["video"])).clamp(-1, 1)
    assert background_flicker(noisy) > 5 * background_flicker(items[0]["video"]) + 1


def test_the_extension_measure_catches_a_frozen_and_a_reversed_continuation():
    """Directions are read over the truth's longest straight stretch of the new frames (a
    bounce splits it) and seams only where the truth keeps its speed across the join."""
    from filmstrip.eval.conditioning import (
        ConditionSuite,
        score_row,
        straight_stretch,
        suite_scenes,
        summarize,
    )

    bounce = [[0, 0], [1, 0], [2, 0], [1, 0], [0, 0], [-1, 0], [-2, 0]]
    assert straight_stretch(bounce, 0) == (2, 6) and straight_stretch(bounce, 1) == (2, 6)
    assert straight_stretch(bounce[:4], 0) is None  # two steps, then one: too short for a direction
    cfg = ConditionSuite(num_scenes=12)
    k = cfg.context - 1
    items = suite_scenes(cfg)
    frozen = [
        torch.cat([it["video"][:, : k + 1]] + [it["video"][:, k : k + 1]] * (cfg.frames - k - 1), 1)
        for it in items
    ]
    reversed_ = [torch.cat([it["video"][:, : k + 1], it["video"][:, :k].flip(1)], 1) for it in items]
    still = summarize(
        "extend", [score_row("extend", v, it, cfg) for v, it in zip(frozen, items, strict=True)]
    )
    assert still["direction"] == 0 and still["seam_within_20pct"] == 0 and still["seams_measured"] >= 5
    assert still["speed_within_10pct"] == 0
    back = summarize(
        "extend", [score_row("extend", v, it, cfg) for v, it in zip(reversed_, items, strict=True)]
    )
    assert back["direction"] < 0.3
    # A continuation that stutters (each new frame shown twice) keeps its pace on average,
    # but no step is even: steps of 0 and twice the speed.
    shown = [min(k + 1 + 2 * ((j - k - 1) // 2), cfg.frames - 1) for j in range(k + 1, cfg.frames)]
    stutter = [torch.cat([it["video"][:, : k + 1], it["video"][:, shown]], 1) for it in items]
    halting = summarize(
        "extend", [score_row("extend", v, it, cfg) for v, it in zip(stutter, items, strict=True)]
    )
    assert halting["steps_even_20pct"] < 0.1 and halting["direction"] > 0.9


def test_image_guidance_defaults_by_what_is_given(tiny_bundle):
    from filmstrip.pipelines.generate import KEYFRAME_IMAGE_SCALE, PREFIX_IMAGE_SCALE, image_scale

    pipe = load_pipeline(tiny_bundle)
    x = initial_noise(latent_shape(pipe, 1, 9, 32, 32), 0)
    image = torch.zeros(3, 32, 32)
    first = prepare_frames(pipe, [ImageCondition(image, 0)], 9, x)
    last = prepare_frames(pipe, [ImageCondition(image, 0), ImageCondition(image, -1)], 9, x)
    assert image_scale(GenerateConfig(), first) == 1.0  # frame 0 is held in place: no push needed
    assert image_scale(GenerateConfig(), last) == KEYFRAME_IMAGE_SCALE == 6.0
    assert image_scale(GenerateConfig(image_scale=2.0), last) == 2.0  # asked for: kept
    prefix = prepare_frames(pipe, [VideoCondition(torch.zeros(3, 5, 32, 32), 0)], 9, x)  # extension
    assert len(prefix.in_place) == 2 and image_scale(GenerateConfig(), prefix) == PREFIX_IMAGE_SCALE == 4.0


def test_the_speed_slope_reads_through_a_tracker_jump_and_sees_a_constant_guess():
    import numpy as np

    from filmstrip.eval.conditioning import _rank_correlation, _robust_slope

    given = np.linspace(0.8, 2.0, 20)
    kept = given.copy()
    kept[3] = 8.0  # an object lost for a frame reads as a jump
    assert abs(_robust_slope(given, kept) - 1) < 0.05 and _rank_correlation(given, kept) > 0.75
    guess = np.full(20, 1.3)  # the typical speed, whatever was given
    assert _robust_slope(given, guess) == 0 and np.isnan(_rank_correlation(given, guess))
    assert abs(_robust_slope(given, 0.5 * given + 0.6) - 0.5) < 1e-9
