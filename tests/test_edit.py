"""Editing a given clip: SDEdit's ends are exact, and inversion retraces a known flow."""

import math

import pytest
import torch

from filmstrip.diffusion.sampling import schedule
from filmstrip.diffusion.spec import ModelSpec
from filmstrip.errors import InputError
from filmstrip.models.attention import attend, attend_with_hook
from filmstrip.models.conditioning import Conditioning
from filmstrip.models.dit import VideoDiT, preset
from filmstrip.models.vae import VideoVAE
from filmstrip.models.vae import preset as vae_preset
from filmstrip.pipelines.attention_share import AttentionShare, token_alignment
from filmstrip.pipelines.denoise import Pipeline, denoise, encode, initial_noise, latent_shape, make_schedule
from filmstrip.pipelines.edit import (
    Sharing,
    edit_latents,
    invert,
    partial_schedule,
    sdedit_latents,
    video_to_video,
)
from filmstrip.pipelines.generate import GenerateConfig
from filmstrip.pipelines.prepare import prepare_text, stack_levels
from filmstrip.text.encoder import TextEncoder

MU, SIGMA = 0.7, 0.5


def gaussian_flow(x, t, cond):
    """The exact rectified-flow velocity when data are N(MU, SIGMA^2) per value: linear in x."""
    t = t[:, None, :, None, None].double()
    var = (1 - t) ** 2 * SIGMA**2 + t**2
    return -MU + (t - (1 - t) * SIGMA**2) / var * (x - (1 - t) * MU)


@pytest.mark.parametrize("solver", ["euler", "heun"])
def test_inversion_of_a_closed_form_flow_is_exact_to_solver_tolerance(solver):
    """Integrating backwards from data gives the exact noise, (x0 - MU) / SIGMA, with an error
    that falls with the step count at the solver's order; forwards again gives the data back."""
    z = MU + SIGMA * torch.randn(
        2, 3, 4, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    exact = (z - MU) / SIGMA
    errors = []
    for steps in (25, 100):
        sched = schedule(steps, 4).double()
        noise = denoise(gaussian_flow, z, sched.flip(0), [Conditioning()], solver=solver)
        back = denoise(gaussian_flow, noise, sched, [Conditioning()], solver=solver)
        errors.append(float((noise - exact).abs().max()))
        assert float((back - z).abs().max()) < 2 * errors[-1] + 1e-9
    order = math.log(errors[0] / errors[1], 4)
    assert order > (0.8 if solver == "euler" else 1.6) or errors[1] < 1e-9, errors


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    dit = VideoDiT(preset("tiny", in_channels=4)).eval()
    with torch.no_grad():
        for p in dit.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # open the zero-initialised gates
    return Pipeline(dit, VideoVAE(vae_preset("tiny", latent_channels=4)).eval(), TextEncoder(), ModelSpec())


def test_sdedit_strength_zero_returns_the_clip_and_one_ignores_it(pipe):
    cfg = GenerateConfig(frames=5, height=32, width=32, steps=6, seed=3)
    clip = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    z = encode(pipe, clip)
    prompts = ["a red circle moves up"]
    assert torch.equal(sdedit_latents(pipe, z, prompts, cfg, 0.0), z)
    assert torch.equal(sdedit_latents(pipe, z, prompts, cfg, 0.0, "", ["a blue circle"], Sharing()), z)
    # Strength 1: text to video from the same seed, whatever the clip.
    shape = latent_shape(pipe, 1, 5, 32, 32)
    levels = stack_levels([prepare_text(pipe.text, prompts)])
    t2v = denoise(pipe.dit, initial_noise(shape, 3), make_schedule(pipe, shape, 6), levels, [cfg.text_scale])
    torch.testing.assert_close(sdedit_latents(pipe, z, prompts, cfg, 1.0), t2v, rtol=0, atol=1e-6)
    torch.testing.assert_close(sdedit_latents(pipe, z * 0, prompts, cfg, 1.0), t2v, rtol=0, atol=1e-6)
    # In between, the start is the clip noised to the strength, and fewer steps run.
    assert partial_schedule(make_schedule(pipe, shape, 6), 0.5)[0].eq(0.5).all()
    assert video_to_video(pipe, clip, prompts, cfg, 0.5).shape == clip.shape
    with pytest.raises(InputError, match=r"in \[0, 1\]"):
        sdedit_latents(pipe, z, prompts, cfg, 1.5)


def test_inverting_then_regenerating_under_the_same_prompt_returns_the_clip(pipe):
    z = encode(pipe, torch.rand(1, 3, 5, 32, 32) * 2 - 1)
    prompts = ["a red circle moves up"]
    levels = stack_levels([prepare_text(pipe.text, prompts)])
    errors = []
    for steps in (10, 80):
        noise = invert(pipe, z, prompts, steps)
        back = denoise(pipe.dit, noise, make_schedule(pipe, z.shape, steps), levels, [1.0])
        errors.append(float((back - z).abs().max()))
    assert errors[1] < errors[0] / 3 and errors[1] < 0.05, errors


def test_attention_weights_reproduce_attention_and_hooks_see_them():
    q, k, v = (torch.randn(2, 3, 7, 8, generator=torch.Generator().manual_seed(i), dtype=torch.float64)
               for i in range(3))  # fmt: skip
    mask = torch.rand(2, 1, 1, 7, generator=torch.Generator().manual_seed(3)) > 0.3
    mask[0, ..., 0] = True
    seen = []
    out = attend_with_hook(q, k, v, mask, lambda w: seen.append(w) or w)
    torch.testing.assert_close(out, attend(q, k, v, mask))
    torch.testing.assert_close(seen[0].sum(-1), torch.ones(2, 3, 7, dtype=torch.float64))
    # A hook's weights are what the values are mixed with.
    uniform = attend_with_hook(q, k, v, None, lambda w: torch.full_like(w, 1 / 7))
    torch.testing.assert_close(uniform, v.mean(dim=2, keepdim=True).expand_as(v))


def test_token_alignment_maps_shared_tokens_and_shares_out_a_replaced_span():
    m = token_alignment([1, 5, 9, 2], [1, 5, 9, 2], 5, 6)
    torch.testing.assert_close(m[:4, :4], torch.eye(4))
    assert m[4:].abs().sum() == 0 and m[:, 4].abs().sum() == 0  # padding reads nothing
    # "a red circle" -> "a cy ##an circle": both new tokens share the weight "red" had.
    m = token_alignment([101, 7, 30, 102], [101, 8, 9, 30, 102], 4, 5)
    assert m.tolist() == [[1, 0, 0, 0], [0, 0.5, 0, 0], [0, 0.5, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    torch.testing.assert_close(m.sum(dim=0), torch.ones(4))


def test_attention_share_replays_what_it_recorded_and_unhooks(pipe):
    x = torch.randn(2, 4, 2, 4, 4, generator=torch.Generator().manual_seed(1))
    other = torch.randn(2, 4, 2, 4, 4, generator=torch.Generator().manual_seed(2))
    t = torch.full((2, 2), 0.7)
    _, text = prepare_text(pipe.text, ["a red circle moves up", "two blue squares"])
    share = AttentionShare(pipe.dit)
    own = pipe.dit(x, t, text)
    with share.recording():
        torch.testing.assert_close(pipe.dit(x, t, text), own)
    identity = torch.stack([torch.eye(text.context.shape[1])] * 2)
    with share.replaying(True, identity):  # its own weights: its own output
        torch.testing.assert_close(pipe.dit(x, t, text), own)
        shared = pipe.dit(other, t, text)
    assert all(layer.weights_hook is None for _, layer in share.layers)
    assert not torch.allclose(shared, pipe.dit(other, t, text))  # another state, the recorded weights
    with pytest.raises(ValueError, match="do not fit"), share.replaying(True):
        pipe.dit(other[:1], t[:1], prepare_text(pipe.text, ["a red circle moves up"])[1])
    assert all(layer.weights_hook is None for _, layer in share.layers)


@pytest.mark.parametrize("sharing", [None, Sharing(), Sharing(self_until=0.0, cross_until=0.0)])
def test_an_edit_under_the_same_prompt_returns_the_clip(pipe, sharing):
    """Inverting and regenerating under the clip's own prompt at text scale 1 gives the clip
    back, with or without the clip's attention shared: sharing only moves an edit towards it."""
    clip = torch.rand(1, 3, 5, 32, 32, generator=torch.Generator().manual_seed(4)) * 2 - 1
    prompts = ["a red circle moves up"]
    z = encode(pipe, clip)
    cfg = GenerateConfig(frames=5, height=32, width=32, steps=60, text_scale=1.0)
    out = edit_latents(pipe, z, prompts, prompts, cfg, sharing=sharing)
    assert float((out - z).abs().max()) < 0.05


def test_sharing_refuses_a_clip_whose_attention_would_not_fit(pipe, monkeypatch):
    """The recorded weights grow with the square of the tokens: the edit says so before it
    starts rather than dying in the allocator."""
    from filmstrip.pipelines.attention_share import recorded_bytes

    cfg = pipe.dit.cfg
    assert recorded_bytes(pipe.dit, 2, 10, 7) == cfg.depth * 2 * cfg.heads * 10 * 17 * 4
    z = encode(pipe, torch.rand(1, 3, 5, 32, 32) * 2 - 1)
    prompts, cfg_gen = ["a red circle moves up"], GenerateConfig(frames=5, height=32, width=32, steps=2)
    monkeypatch.setattr("filmstrip.io.memory.available_bytes", lambda device=None: 1000)
    with pytest.raises(InputError, match="sharing the attention of 1 clip"):
        edit_latents(pipe, z, prompts, ["a blue circle moves up"], cfg_gen)
    assert edit_latents(pipe, z, prompts, ["a blue circle moves up"], cfg_gen, sharing=None).shape == z.shape


def test_an_edit_needs_one_source_and_one_edited_prompt_per_clip(pipe):
    z = encode(pipe, torch.rand(1, 3, 5, 32, 32) * 2 - 1)
    cfg = GenerateConfig(frames=5, height=32, width=32, steps=2)
    with pytest.raises(InputError, match="give one of each per clip"):
        edit_latents(pipe, z, ["a red circle", "a red square"], ["a blue circle", "a blue square"], cfg)
    with pytest.raises(InputError, match="give one of each per clip"):
        sdedit_latents(pipe, z, ["a blue circle"], cfg, 0.5, "", ["a red circle", "a red square"], Sharing())


def test_attention_share_covers_a_factorised_dit():
    """Spatial and temporal attention are both shared: replaying a forward's own weights gives
    its output back, and another state under them differs from its own."""
    torch.manual_seed(0)
    dit = VideoDiT(preset("tiny", in_channels=4, attention="factorized")).eval()
    with torch.no_grad():
        for p in dit.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    x, other = (torch.randn(1, 4, 3, 4, 4, generator=torch.Generator().manual_seed(i)) for i in (1, 2))
    t = torch.full((1, 3), 0.6)
    share = AttentionShare(dit)
    assert sum(name.startswith("self_t") for name, _ in share.layers) == dit.cfg.depth
    with torch.no_grad():
        with share.recording():
            own = dit(x, t)
        with share.replaying(True):
            torch.testing.assert_close(dit(x, t), own)
            shared = dit(other, t)
        assert not torch.allclose(shared, dit(other, t))
