"""Typed conditions through one denoising core: batching, guidance levels, clean frames, and a
DiT conditioned on actions alone (no text encoder) that trains and samples like text-to-video."""

import pytest
import torch

from filmstrip.diffusion.flow import add_noise, per_frame_loss, velocity_target
from filmstrip.diffusion.spec import ModelSpec
from filmstrip.errors import InputError
from filmstrip.models.conditioning import Conditioning
from filmstrip.models.dit import VideoDiT, preset
from filmstrip.models.vae import VideoVAE
from filmstrip.models.vae import preset as vae_preset
from filmstrip.pipelines.denoise import (
    Pipeline,
    decode,
    denoise,
    initial_noise,
    latent_shape,
    make_schedule,
    place_frames,
)
from filmstrip.pipelines.prepare import prepare_text, prepare_vector, stack_levels

ACTIONS = 3


def action_dit() -> VideoDiT:
    return VideoDiT(preset("tiny", in_channels=4, context_dim=0, vectors=(("action", ACTIONS),)))


def one_hot(index_bt: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.one_hot(index_bt, ACTIONS).float()


def test_cat_pads_tokens_and_marks_missing_vectors_absent():
    a = Conditioning(
        torch.randn(2, 3, 8), torch.ones(2, 3, dtype=torch.bool), {"action": torch.randn(2, 4, 5)}
    )
    b = Conditioning(torch.randn(1, 5, 8), torch.ones(1, 5, dtype=torch.bool))
    both = Conditioning.cat([a, b])
    assert both.context.shape == (3, 5, 8) and both.context_mask.sum(1).tolist() == [3, 3, 5]
    assert both.vectors["action"].shape == (3, 4, 5) and both.is_present("action").tolist() == [
        True,
        True,
        False,
    ]
    assert not both.vectors["action"][2].any()
    assert both.rows(slice(2, 3)).is_present("action").tolist() == [False]


def test_a_model_without_text_refuses_text_and_unknown_conditions():
    model = action_dit()
    z, t = torch.randn(1, 4, 2, 4, 4), torch.rand(1, 2)
    assert model.blocks[0].cross is None and model.context_embed is None
    with pytest.raises(InputError, match="takes no text"):
        model(z, t, Conditioning(torch.randn(1, 2, 384), torch.ones(1, 2, dtype=torch.bool)))
    with pytest.raises(InputError, match="no condition named"):
        model(z, t, Conditioning(vectors={"camera": torch.randn(1, 2, 6)}))
    with pytest.raises(InputError, match=r"\(B, T, dim\)"):
        model(z, t, Conditioning(vectors={"action": torch.randn(1, 2, ACTIONS + 1)}))
    with pytest.raises(InputError, match="takes no text"):
        prepare_text(None, ["a red circle"])


def test_an_absent_vector_is_the_unconditional_model_and_reaches_only_its_frame():
    torch.manual_seed(0)
    model = action_dit().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        for block in model.blocks:  # attention off: frames cannot talk to each other
            torch.nn.init.zeros_(block.attn.out.weight)
            torch.nn.init.zeros_(block.attn.out.bias)
        z, t = torch.randn(2, 4, 3, 4, 4), torch.rand(2, 3)
        actions = one_hot(torch.tensor([[0, 1, 2], [2, 2, 0]]))
        absent = Conditioning(vectors={"action": actions}, present={"action": torch.tensor([False, False])})
        torch.testing.assert_close(model(z, t, absent), model(z, t, None))
        changed = actions.clone()
        changed[:, 1] = one_hot(torch.tensor([[0], [0]]))[:, 0]
        diff = (
            (
                model(z, t, Conditioning(vectors={"action": actions}))
                - model(z, t, Conditioning(vectors={"action": changed}))
            )
            .abs()
            .amax(dim=(1, 3, 4))
        )
    assert (diff[:, 1] > 1e-5).all() and (diff[:, [0, 2]] == 0).all()


def test_action_conditioned_dit_without_text_trains_and_samples_through_denoise():
    """Frame k of a clip is flat at the value its action names (-1, 0, 1): a tiny DiT given
    only actions must learn it (loss falls), then draw it through the same denoise as text."""
    torch.manual_seed(0)
    model = action_dit()
    levels_of = torch.tensor([-1.0, 0.0, 1.0])
    g = torch.Generator().manual_seed(0)

    def batch(n: int):
        acts = torch.randint(0, ACTIONS, (n, 3), generator=g)
        z0 = levels_of[acts][:, None, :, None, None].expand(n, 4, 3, 4, 4).contiguous()
        return z0, acts

    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(250):
        z0, acts = batch(16)
        t = torch.rand(16, 3, generator=g)
        noise = torch.randn(z0.shape, generator=g)
        cond = Conditioning(vectors={"action": one_hot(acts)})
        loss = per_frame_loss(model(add_noise(z0, noise, t), t, cond), velocity_target(z0, noise)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-20:]) / 20 < 0.3 * sum(losses[:20]) / 20

    model.eval()
    vae = VideoVAE(vae_preset("tiny", latent_channels=4)).eval()
    pipe = Pipeline(model, vae, None, ModelSpec())
    shape = latent_shape(pipe, 2, 9, 32, 32)
    assert shape == (2, 4, 3, 4, 4)
    acts = torch.tensor([[0, 1, 2], [2, 0, 1]])
    levels = stack_levels([prepare_vector("action", one_hot(acts))])
    z = denoise(model, initial_noise(shape, 0), make_schedule(pipe, shape, 20), levels, [1.0])
    drawn = z.mean(dim=(1, 3, 4))  # (B, T): the flat value of each latent frame
    assert (drawn - levels_of[acts]).abs().max() < 0.35, drawn
    assert decode(pipe, z, 9).shape == (2, 3, 9, 32, 32)


def test_clean_frames_stay_exact_and_are_seen_at_noise_level_zero():
    seen = []

    def model(x, t, cond):
        seen.append(t.clone())
        return torch.ones_like(x)

    x = torch.randn(2, 4, 3, 2, 2)
    clean = torch.randn(4, 2, 2)
    from filmstrip.diffusion.sampling import schedule

    x, sched = place_frames(x, schedule(5, 3, shift=3.0), {0: clean})
    out = denoise(model, x, sched, [Conditioning()], [])
    assert torch.equal(out[:, :, 0], clean.expand(2, -1, -1, -1))
    assert all((t[:, 0] == 0).all() and (t[:, 1:] > 0).all() for t in seen)
    with pytest.raises(InputError, match="outside"):
        place_frames(x, sched, {3: clean})
