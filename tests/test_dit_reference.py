"""The DiT against a written-out float64 reference of its equations.

The model takes shortcuts for speed (RoPE as one complex multiply from a table built once
per forward, modulation broadcast over a frame's tokens instead of copied to each, a choice
between the fused attention kernel and the written-out product). The reference below does
each step the plain way: real-valued rotations of channel pairs recomputed per layer,
per-token modulation, softmax attention with an explicit mask. The model must agree with
it to float64 rounding, with gradients on and off."""

import pytest
import torch
import torch.nn.functional as F

from filmstrip.models import attention
from filmstrip.models.conditioning import Conditioning
from filmstrip.models.dit import VideoDiT, preset
from filmstrip.models.embeddings import patchify, unpatchify
from filmstrip.models.rope import grid_positions, rope_angles


def rotate(x, angles):
    """x: (..., N, d); angles (N, d/2): rotate channel pairs (2i, 2i + 1)."""
    cos, sin = angles.cos(), angles.sin()
    a, b = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = a * cos - b * sin
    out[..., 1::2] = a * sin + b * cos
    return out


def rms(x, norm):
    return x / (x.square().mean(-1, keepdim=True) + norm.eps).sqrt() * norm.weight


def softmax_attention(q, k, v, allowed=None):
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    return scores.softmax(-1) @ v


def self_attention(mod, x, angles, allowed=None):
    b, n, d = x.shape
    q, k, v = mod.qkv(x).reshape(b, n, 3, mod.heads, d // mod.heads).permute(2, 0, 3, 1, 4)
    q, k = rotate(rms(q, mod.q_norm), angles), rotate(rms(k, mod.k_norm), angles)
    return mod.out(softmax_attention(q, k, v, allowed).transpose(1, 2).reshape(b, n, d))


def cross_attention(mod, x, ctx, mask):
    b, n, d = x.shape
    h = mod.heads
    q = mod.q(x).reshape(b, n, h, -1).transpose(1, 2)
    k, v = mod.kv(ctx).reshape(b, ctx.shape[1], 2, h, -1).permute(2, 0, 3, 1, 4)
    y = softmax_attention(rms(q, mod.q_norm), rms(k, mod.k_norm), v, mask[:, None, None, :])
    return mod.out(y.transpose(1, 2).reshape(b, n, d))


def layer_norm(x, norm):
    return F.layer_norm(x, x.shape[-1:], norm.weight, norm.bias, norm.eps)


def reference_forward(model, z, t, ctx, mask):
    cfg = model.cfg
    tokens, (gt, gh, gw) = patchify(z, cfg.patch)
    s = gh * gw
    x = model.x_embed(tokens)  # (B, N, D)
    if model.place_embed is not None:
        x = x + model.place_embed(gh, gw, device=x.device).repeat(gt, 1)
    c = model.t_embed(t)
    pooled = (ctx * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    c = c + model.context_embed(pooled)[:, None]
    if model.text_refiner is not None:
        index = torch.arange(ctx.shape[1], dtype=torch.float64)
        text_angles = rope_angles(index[:, None].expand(-1, 3), model.text_refiner.head_dim).double()
        for layer in model.text_refiner.layers:
            ctx = ctx + self_attention(
                layer.attn, layer_norm(ctx, layer.norm1), text_angles, mask[:, None, None, :]
            )
            ctx = ctx + layer.mlp(layer_norm(ctx, layer.norm2))
    angles = rope_angles(grid_positions(gt, gh, gw), cfg.head_dim).double()
    per_token = lambda m: m.repeat_interleave(s, dim=1)  # noqa: E731 (B, T', D) -> (B, N, D)
    for blk in model.blocks:
        mod = [per_token(m) for m in blk.ada(c).chunk(blk.num_mod, dim=-1)]
        y = layer_norm(x, blk.norm1) * (1 + mod[1]) + mod[0]
        if blk.attn_t is None:
            x = x + mod[2] * self_attention(blk.attn, y, angles)
        else:
            b, d = y.shape[0], y.shape[-1]
            spatial = self_attention(blk.attn, y.reshape(b * gt, s, d), angles[:s]).reshape(b, -1, d)
            x = x + mod[2] * spatial
            y = layer_norm(x, blk.norm_t) * (1 + mod[7]) + mod[6]
            y = y.reshape(b, gt, s, d).transpose(1, 2).reshape(b * s, gt, d)
            temporal = self_attention(blk.attn_t, y, angles[::s]).reshape(b, s, gt, d).transpose(1, 2)
            x = x + mod[8] * temporal.reshape(b, -1, d)
        x = x + cross_attention(blk.cross, layer_norm(x, blk.norm2), ctx, mask)
        x = x + mod[5] * blk.mlp(layer_norm(x, blk.norm3) * (1 + mod[4]) + mod[3])
    shift, scale = (per_token(m) for m in model.final.ada(c).chunk(2, dim=-1))
    out = model.final.linear(layer_norm(x, model.final.norm) * (1 + scale) + shift)
    return unpatchify(out, (gt, gh, gw), cfg.patch)


@pytest.mark.parametrize(
    "options",
    [{}, {"attention": "factorized"}, {"place_embedding": True, "text_refiner": 1, "context_dim": 64}],
    ids=["full", "factorized", "place+refiner"],
)
@pytest.mark.parametrize("grad", [False, True], ids=["inference", "training"])
def test_dit_matches_float64_reference(options, grad):
    torch.manual_seed(0)
    model = VideoDiT(preset("tiny", **options)).double()
    with torch.no_grad():  # open the zero-initialised gates so every path carries signal
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    z, t = torch.randn(2, 16, 3, 4, 6, dtype=torch.float64), torch.rand(2, 3, dtype=torch.float64)
    ctx = torch.randn(2, 5, model.cfg.context_dim, dtype=torch.float64)
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1, 2:] = False
    with torch.set_grad_enabled(grad):
        out = model(z, t, Conditioning(ctx, mask))
        ref = reference_forward(model, z, t, ctx, mask)
    assert out.abs().mean() > 0.1  # the comparison is not between two zeros
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("grad", [False, True])
def test_attention_paths_agree_and_zero_fully_masked_queries(grad):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 8, generator=g, dtype=torch.float64) for _ in range(3))
    mask = torch.rand(2, 1, 7, 7, generator=g) > 0.4
    mask[0, 0, 3] = False  # a query with no key at all
    with torch.set_grad_enabled(grad):
        fused = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        written = attention.written_out_attention(q, k, v, mask)
        chosen = attention.attend(q, k, v, mask)
    torch.testing.assert_close(written, fused, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(chosen, fused, rtol=1e-12, atol=1e-12)
    assert torch.all(written[0, :, 3] == 0)


def test_attention_path_rule():
    """The written-out product where it measured faster (CPU training under bf16, short
    sequences); the fused kernel elsewhere."""
    short, long = torch.zeros(1, 1, 80, 8), torch.zeros(1, 1, 1024, 8)
    assert attention.written_out_is_faster(short.bfloat16(), short.bfloat16())
    assert not attention.written_out_is_faster(long.bfloat16(), long.bfloat16())
    assert not attention.written_out_is_faster(short, short)  # float32
    with torch.no_grad():
        assert not attention.written_out_is_faster(short.bfloat16(), short.bfloat16())
