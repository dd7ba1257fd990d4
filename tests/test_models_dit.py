"""Video DiT parts: patchify, 3D RoPE, AdaLN-Zero, per-frame timesteps, attention modes."""

import pytest
import torch

from filmstrip.models.conditioning import Conditioning
from filmstrip.models.dit import DiTBlock, VideoDiT, forward_flops, num_parameters, preset
from filmstrip.models.embeddings import patchify, unpatchify
from filmstrip.models.rope import apply_rope, axes_split, grid_positions, rope_angles, rotations
from filmstrip.models.text_refiner import TextRefiner


def text(b=2, length=6, dim=384, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[-1, length // 2 :] = False
    return torch.randn(b, length, dim, generator=g), mask


def perturbed(model, scale=0.05, seed=0):
    """Open the zero-initialised gates so every path carries signal."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return model


@pytest.mark.parametrize("patch", [(1, 2, 2), (1, 1, 1), (2, 2, 1)])
def test_patchify_round_trip(patch):
    z = torch.randn(2, 16, 4, 6, 8)
    tokens, grid = patchify(z, patch)
    pt, ph, pw = patch
    assert tokens.shape == (2, (4 // pt) * (6 // ph) * (8 // pw), 16 * pt * ph * pw)
    assert torch.equal(unpatchify(tokens, grid, patch), z)
    # Token 0 is the (0, 0, 0) patch: its features are exactly those latents.
    assert torch.equal(tokens[0, 0], z[0, :, :pt, :ph, :pw].reshape(-1))


def test_patchify_rejects_sizes_that_do_not_divide():
    with pytest.raises(ValueError, match="do not divide into 1x2x2 patches"):
        patchify(torch.zeros(1, 4, 3, 5, 6), (1, 2, 2))


def test_rope_depends_only_on_relative_position():
    head_dim = 12
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 1, head_dim, generator=g), torch.randn(1, 1, 1, head_dim, generator=g)

    def score(p_q, p_k):
        aq = rotations(rope_angles(torch.tensor([p_q], dtype=torch.float32), head_dim))
        ak = rotations(rope_angles(torch.tensor([p_k], dtype=torch.float32), head_dim))
        return float((apply_rope(q, aq) * apply_rope(k, ak)).sum())

    base = score((1.0, 2.0, 3.0), (4.0, 0.0, 5.0))
    assert score((11.0, -3.0, 8.5), (14.0, -5.0, 10.5)) == pytest.approx(base, abs=1e-5)
    assert score((1.0, 2.0, 3.0), (5.0, 0.0, 5.0)) != pytest.approx(base, abs=1e-3)
    # A rotation preserves norms.
    a = rotations(rope_angles(torch.tensor([[3.0, 1.0, 2.0]]), head_dim))
    assert apply_rope(q, a).norm() == pytest.approx(float(q.norm()), rel=1e-5)


def test_rope_positions_offset_and_scale():
    assert axes_split(64) == (16, 24, 24)
    pos = grid_positions(2, 3, 4, offset=(5.0, 0.0, 0.0), scale=(1.0, 0.5, 1.0))
    assert pos.shape == (24, 3)
    assert pos[0].tolist() == [5.0, 0.0, 0.0] and pos[-1].tolist() == [6.0, 1.0, 3.0]
    with pytest.raises(ValueError, match="even head_dim"):
        axes_split(7)


@pytest.mark.parametrize("attention", ["full", "factorized"])
def test_fresh_block_is_identity_and_fresh_model_predicts_zero(attention):
    cfg = preset("tiny", attention=attention)
    block = DiTBlock(cfg)
    model = VideoDiT(cfg)
    block.load_state_dict(model.blocks[0].state_dict())
    x = torch.randn(2, 5, 16, cfg.width)
    ctx, mask = text()
    c = torch.randn(2, 5, cfg.width)
    rot = rotations(rope_angles(grid_positions(5, 4, 4), cfg.head_dim))
    assert torch.equal(block(x, c, rot, ctx, mask), x)
    out = model(torch.randn(2, 16, 5, 8, 8), torch.rand(2, 5), Conditioning(ctx, mask))
    assert out.shape == (2, 16, 5, 8, 8) and torch.count_nonzero(out) == 0


@pytest.mark.parametrize("attention", ["full", "factorized"])
def test_per_frame_timestep_reaches_only_its_frame_tokens_through_modulation(attention):
    """With attention switched off (zero attention outputs), frame k's output can depend on
    t only through its own frame's modulation: changing t[:, k] changes frame k alone."""
    model = perturbed(VideoDiT(preset("tiny", attention=attention))).eval()
    for block in model.blocks:
        for attn in filter(None, (block.attn, block.attn_t, block.cross)):
            torch.nn.init.zeros_(attn.out.weight)
            torch.nn.init.zeros_(attn.out.bias)
    z, (ctx, mask) = torch.randn(2, 16, 4, 4, 4), text()
    t = torch.full((2, 4), 0.5)
    t2 = t.clone()
    t2[:, 2] = 0.9
    with torch.no_grad():
        diff = (
            (model(z, t, Conditioning(ctx, mask)) - model(z, t2, Conditioning(ctx, mask)))
            .abs()
            .amax(dim=(0, 1, 3, 4))
        )
    assert diff[2] > 1e-4
    assert torch.all(diff[[0, 1, 3]] == 0)


NEW_PART = {
    "frame_embedding": "frame_embed.",
    "place_embedding": "place_embed.",
    "text_refiner": "text_refiner.",
}


def added_to_a_trained_model(option: str, value=True):
    """A trained-looking model, the same with `option` switched on and the trained weights
    loaded into it, and inputs. Checks that only the new part's weights are missing and
    that, fresh, it changes no prediction."""
    z, (ctx, mask) = torch.randn(2, 16, 3, 4, 4), text()
    t = torch.full((2, 3), 0.5)
    plain = perturbed(VideoDiT(preset("tiny"))).eval()
    extended = VideoDiT(preset("tiny", **{option: value})).eval()
    missing, unexpected = extended.load_state_dict(plain.state_dict(), strict=False)
    prefix = NEW_PART[option]
    assert not unexpected and missing and all(k.startswith(prefix) for k in missing)
    with torch.no_grad():
        torch.testing.assert_close(
            extended(z, t, Conditioning(ctx, mask)), plain(z, t, Conditioning(ctx, mask))
        )
    return plain, extended, (z, t, Conditioning(ctx, mask))


def test_frame_embedding_gives_tokens_their_absolute_frame_index():
    """RoPE sees only relative positions, so shifting a clip's frame positions changes
    nothing; with the frame embedding open it does. Fresh, the embedding is a no-op, so a
    trained model without it loads into a model with it and predicts the same."""
    plain, with_index, inputs = added_to_a_trained_model("frame_embedding")
    with torch.no_grad():
        shifted = {"rope_offset": (3.0, 0.0, 0.0)}
        torch.testing.assert_close(plain(*inputs, **shifted), plain(*inputs))
        perturbed(with_index.frame_embed, seed=1)
        moved = (with_index(*inputs, **shifted) - with_index(*inputs)).abs()
    assert moved.amax() > 1e-3


def test_place_embedding_gives_tokens_their_place_in_the_frame():
    """Fresh, the place embedding is a no-op (a trained model loads into it unchanged); open,
    it changes predictions, gives every place its own vector, and measures places in
    fractions of the frame, so the centre of a 3x3 grid is the centre of a 1x1 grid."""
    plain, with_place, inputs = added_to_a_trained_model("place_embedding")
    with torch.no_grad():
        embed = perturbed(with_place.place_embed, seed=1)
        torch.testing.assert_close(embed(3, 3)[4], embed(1, 1)[0])
        grid = embed(4, 4)
        apart = torch.cdist(grid, grid) + torch.eye(16) * 1e9
        assert apart.amin() > 1e-3
        moved = (with_place(*inputs) - plain(*inputs)).abs()
    assert moved.amax() > 1e-3


def test_text_refiner_starts_as_a_pass_through_then_rewrites_the_prompt():
    """Added to a trained model, a fresh refiner changes nothing; open, it changes what the
    cross-attention reads."""
    _, refined, inputs = added_to_a_trained_model("text_refiner", 2)
    with torch.no_grad():
        before = refined(*inputs)
        perturbed(refined.text_refiner, seed=1)
        moved = (refined(*inputs) - before).abs()
    assert moved.amax() > 1e-3
    with pytest.raises(ValueError, match="number of layers"):
        preset("tiny", text_refiner=-1)


def test_text_refiner_sees_word_order():
    """Gathering a clause means knowing which words are near: a one-layer refiner learns to
    put at every position the (unrelated, random) token that follows it, which attention by
    content alone cannot do. Its 1D RoPE gives it the offsets."""
    g = torch.Generator().manual_seed(0)
    vocab = torch.randn(16, 32, generator=g)
    refiner = TextRefiner(32, depth=1, heads=2)
    head = torch.nn.Linear(32, 32)
    opt = torch.optim.Adam([*refiner.parameters(), *head.parameters()], lr=3e-3)
    mask = torch.ones(64, 8, dtype=torch.bool)
    losses = []
    for _ in range(300):
        x = vocab[torch.randint(0, 16, (64, 8), generator=g)]
        loss = (head(refiner(x, mask))[:, :-1] - x[:, 1:]).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-20:]) / 20 < 0.1 * sum(losses[:20]) / 20


@pytest.mark.parametrize("attention", ["full", "factorized", "refined"])
def test_text_padding_is_ignored_and_batch_items_are_independent(attention):
    if attention == "refined":
        model = perturbed(VideoDiT(preset("tiny", text_refiner=1))).eval()
    else:
        model = perturbed(VideoDiT(preset("tiny", attention=attention))).eval()
    z, t = torch.randn(2, 16, 3, 4, 4), torch.rand(2, 3)
    ctx, mask = text()
    ctx2 = ctx.clone()
    ctx2[-1, ~mask[-1]] = 100.0  # garbage in the padded positions of item 1
    with torch.no_grad():
        a, b = model(z, t, Conditioning(ctx, mask)), model(z, t, Conditioning(ctx2, mask))
        torch.testing.assert_close(a, b)
        single = model(z[:1], t[:1], Conditioning(ctx[:1], mask[:1]))
    torch.testing.assert_close(single, a[:1], rtol=1e-4, atol=1e-5)


def test_factorized_attention_differs_from_full_and_both_handle_variable_sizes():
    torch.manual_seed(0)
    full = perturbed(VideoDiT(preset("tiny")))
    fact = perturbed(VideoDiT(preset("tiny", attention="factorized")))
    ctx, mask = text(b=1)
    for shape in [(1, 4, 4), (3, 6, 4), (5, 2, 8)]:
        z = torch.randn(1, 16, *shape)
        assert full(z, torch.rand(1, shape[0]), Conditioning(ctx, mask)).shape == z.shape
        assert fact(z, torch.rand(1), Conditioning(ctx, mask)).shape == z.shape


def test_parameter_and_flop_counts():
    cfg = preset("small")
    n = num_parameters(VideoDiT(cfg))
    assert 5e6 < n < 15e6
    flops = forward_flops(cfg, (5, 8, 8))
    tokens = 5 * 4 * 4
    # Dense FLOPs are about 2 x (parameters in the blocks) x tokens.
    assert 0.5 < flops["dense"] / (2 * n * tokens) < 1.5
    assert flops["total"] == pytest.approx(flops["dense"] + flops["attention"])
    with pytest.raises(ValueError, match="unknown DiT preset"):
        preset("huge")


def test_rope_real_arithmetic_path_equals_complex_path(monkeypatch):
    """Under torch.compile apply_rope multiplies in real arithmetic (inductor has no complex
    codegen); both paths compute the same rotation."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 80, 12, generator=g)
    rot = rotations(rope_angles(grid_positions(5, 4, 4), 12))
    complex_path = apply_rope(x, rot)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    torch.testing.assert_close(apply_rope(x, rot), complex_path, rtol=1e-6, atol=1e-6)
