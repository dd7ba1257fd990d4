"""Causal 3D VAE, 2D baseline and FSQ: causality, shape rules, streaming, quantisation."""

import pytest
import torch

from filmstrip.models.causal import CausalConv2Plus1d, CausalConv3d, StreamCache
from filmstrip.models.fsq import FSQ, codebook_usage
from filmstrip.models.tiling import ramp, tile_spans
from filmstrip.models.vae import VideoVAE, preset


def tiny(name: str = "tiny", seed: int = 0, **overrides) -> VideoVAE:
    torch.manual_seed(seed)
    model = VideoVAE(preset(name, **overrides)).double().eval()
    # Fresh GroupNorm/conv weights make nearly constant outputs; random biases make every
    # layer's contribution visible to the equality checks below.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def clip(t: int, h: int = 32, w: int = 32, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, t, h, w, generator=g, dtype=torch.float64) * 2 - 1


@pytest.mark.parametrize("t, latent_t", [(1, 1), (5, 2), (9, 3), (17, 5), (2, 2), (4, 2), (6, 3), (8, 3)])
def test_shape_rule(t, latent_t):
    model = tiny()
    x = clip(t)
    z = model.encode(x)
    assert z.shape == (2, 4, latent_t, 4, 4)
    assert model.latent_frames(t) == latent_t
    # Decoding gives 1 + 4(T'-1) frames; asking for T crops the padding off again.
    assert model.decode(z).shape[2] == 1 + 4 * (latent_t - 1)
    recon, _ = model(x)
    assert recon.shape == x.shape


def test_single_image_is_first_latent_frame():
    model = tiny()
    x = clip(17)
    z = model.encode(x)
    z_image = model.encode(x[:, :, :1])
    assert z_image.shape[2] == 1
    torch.testing.assert_close(z_image[:, :, 0], z[:, :, 0], rtol=0, atol=1e-12)
    # And back: decoding the first latent frame alone gives the first decoded frame.
    torch.testing.assert_close(
        model.decode(z[:, :, :1])[:, :, 0], model.decode(z)[:, :, 0], rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("factorized", [False, True])
@pytest.mark.parametrize("k", [1, 4, 5, 8, 13, 16])
def test_encoder_is_causal(k, factorized):
    """Changing frame k changes no latent frame before ceil(k / 4)."""
    model = tiny(factorized=factorized)
    x = clip(17)
    x2 = x.clone()
    x2[:, :, k] = -x2[:, :, k]
    z, z2 = model.encode(x), model.encode(x2)
    first_affected = -(-k // 4)
    assert torch.equal(z[:, :, :first_affected], z2[:, :, :first_affected])
    assert not torch.allclose(z[:, :, first_affected], z2[:, :, first_affected])


@pytest.mark.parametrize("upsample, factorized", [("repeat", False), ("learned", False), ("learned", True)])
@pytest.mark.parametrize("j", [1, 2, 4])
def test_decoder_is_causal(j, upsample, factorized):
    """Latent frame j (pixels 4j-3 .. 4j) never changes an earlier decoded frame."""
    model = tiny(time_upsample=upsample, factorized=factorized)
    z = model.encode(clip(17))
    z2 = z.clone()
    z2[:, :, j] += 1.0
    x, x2 = model.decode(z), model.decode(z2)
    first = 4 * (j - 1) + 1
    assert torch.equal(x[:, :, :first], x2[:, :, :first])
    assert not torch.allclose(x[:, :, first], x2[:, :, first])


def test_2d_baseline_is_per_frame():
    model = tiny("tiny2d")
    x = clip(6)
    z = model.encode(x)
    assert z.shape == (2, 4, 6, 4, 4)
    x2 = x.clone()
    x2[:, :, 3] = 0
    changed = (model.encode(x2) - z).abs().amax(dim=(0, 1, 3, 4)) > 0
    assert changed.tolist() == [False, False, False, True, False, False]


@pytest.mark.parametrize(
    "name, chunks, overrides",
    [
        ("tiny", (1, 4, 4, 4), {}),  # the natural grouping: one latent frame per chunk
        ("tiny", (3, 5, 2, 1), {}),  # chunks that cut across groups, and a padded last group
        ("tiny", (2, 1, 1, 1, 1, 1, 7), {}),
        ("tiny", (3, 5, 2, 1), {"time_upsample": "learned"}),
        ("tiny", (3, 5, 2, 1), {"time_upsample": "learned", "factorized": True}),
        ("tiny", (3, 5, 2, 1), {"norm": "pixel"}),
        ("tiny2d", (3, 2), {}),
        ("tinyfsq", (4, 6), {}),
    ],
)
def test_streaming_equals_one_shot(name, chunks, overrides):
    model = tiny(name, **overrides)
    x = clip(sum(chunks), 16, 16)
    z = model.encode(x)
    z_stream = torch.cat(list(model.encode_stream(x.split(list(chunks), dim=2))), dim=2)
    torch.testing.assert_close(z_stream, z, rtol=0, atol=1e-10)
    x_hat = model.decode(z)
    for size in (1, 2):
        x_stream = torch.cat(list(model.decode_stream(z.split(size, dim=2))), dim=2)
        torch.testing.assert_close(x_stream, x_hat, rtol=0, atol=1e-10)


def test_learned_time_upsampling_starts_as_a_repeat():
    """A trained "repeat" decoder loads into a "learned" one unchanged; once its projections
    move, the two frames made from one frame differ."""
    repeat = tiny()
    learned = VideoVAE(preset("tiny", time_upsample="learned")).double().eval()
    missing, unexpected = learned.load_state_dict(repeat.state_dict(), strict=False)
    assert not unexpected and missing and all(".time_ups." in k for k in missing)
    z = repeat.encode(clip(9))
    torch.testing.assert_close(learned.decode(z), repeat.decode(z), rtol=0, atol=1e-12)
    # The deepest stage (8x8 -> 16x16 here) has the first upsampling; its output frames 1, 2
    # come from latent frame 1. Make the second copy differ and check the pixels do too.
    up = learned.decoder.time_ups[0]
    h = torch.randn(1, up.proj.in_channels, 2, 4, 4, dtype=torch.float64)
    same = up(h)
    assert same.shape[2] == 3 and torch.equal(same[:, :, 1], same[:, :, 2])
    with torch.no_grad():
        up.proj.weight[up.proj.in_channels :] *= 0.5
    apart = up(h)
    assert not torch.allclose(apart[:, :, 1], apart[:, :, 2])
    assert not torch.allclose(learned.decode(z), repeat.decode(z))


def test_stream_cache_stays_bounded():
    """The cache holds a few frames per layer, whatever the clip length."""
    model = tiny()
    sizes = []
    for n_chunks in (2, 10):
        cache = StreamCache()
        x = clip(1 + 4 * n_chunks)
        model.encoder(x[:, :, :1], cache)
        for c in range(n_chunks):
            model.encoder(x[:, :, 1 + 4 * c : 5 + 4 * c], cache)
        sizes.append(cache.num_cached_frames())
    assert sizes[0] == sizes[1]


def test_causal_conv_matches_explicit_padding():
    torch.manual_seed(0)
    conv = CausalConv3d(2, 3, (3, 3, 3), stride=(2, 1, 1)).double()
    x = torch.randn(1, 2, 9, 5, 5, dtype=torch.float64)
    padded = torch.cat([x[:, :, :1], x[:, :, :1], x], dim=2)
    expected = torch.nn.functional.conv3d(
        padded, conv.conv.weight, conv.conv.bias, stride=(2, 1, 1), padding=(0, 1, 1)
    )
    torch.testing.assert_close(conv(x), expected)
    assert conv(x).shape[2] == 5  # 1 + 8 frames -> 1 + 4


def test_factorized_conv_starts_per_frame_and_mixes_time_causally():
    """A fresh (2+1)D layer is exactly its 1x3x3 spatial convolution, frame by frame; once
    its temporal taps are trained, frame t reads frames t-2..t and never t+1."""
    torch.manual_seed(0)
    conv = CausalConv2Plus1d(2, 3, (3, 3, 3)).double()
    x = torch.randn(1, 2, 7, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(conv(x), conv.space(x), rtol=0, atol=1e-12)
    with torch.no_grad():
        conv.time.conv.weight.add_(torch.randn_like(conv.time.conv.weight))
    y = conv(x)
    x2 = x.clone()
    x2[:, :, 4] += 1
    changed = (conv(x2) - y).abs().amax(dim=(0, 1, 3, 4)) > 0
    assert changed.tolist() == [False] * 4 + [True] * 3
    # (kh kw + kt) C^2 weights rather than kh kw kt C^2: the width a 3D VAE can afford.
    full = sum(p.numel() for p in CausalConv3d(64, 64).parameters())
    split = sum(p.numel() for p in CausalConv2Plus1d(64, 64).parameters())
    assert split < full / 2


def test_bad_inputs_have_clear_errors():
    model = tiny()
    with pytest.raises(ValueError, match="multiples of the VAE's spatial factor 8"):
        model.encode(clip(5, 4, 4))
    with pytest.raises(ValueError, match="multiples"):
        model.encode(clip(5, 36, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        model.encode(torch.zeros(3, 5, 32, 32))
    with pytest.raises(ValueError, match="latents of shape"):
        model.decode(torch.zeros(1, 7, 2, 4, 4))
    with pytest.raises(ValueError, match="FSQ"):
        model.codes(clip(5))


def test_config_validation():
    with pytest.raises(ValueError, match="temporal_factor"):
        preset("tiny", temporal_factor=8)
    with pytest.raises(ValueError, match="per-frame"):
        preset("tiny", temporal_kernel=1)
    with pytest.raises(ValueError, match="time_upsample"):
        preset("tiny", time_upsample="linear")
    with pytest.raises(ValueError, match="factorized"):
        preset("tiny2d", factorized=True)
    with pytest.raises(ValueError, match="unknown VAE preset"):
        preset("huge")


# ---- FSQ ---------------------------------------------------------------------------------
def test_fsq_levels_are_exact():
    fsq = FSQ((5, 4, 3, 2))
    z = torch.randn(64, 4, 9, 9) * 3
    q = fsq(z)
    for i, n in enumerate(fsq.levels):
        values = torch.unique(q[:, i])
        grid = torch.linspace(-1, 1, n)
        assert len(values) == n  # every level reached with this many samples
        assert torch.allclose(values, grid, atol=1e-6)
    assert fsq.codebook_size == 120


def test_fsq_codes_round_trip():
    fsq = FSQ((8, 5, 5, 3))
    z = torch.randn(4, 4, 6, 6) * 2
    codes = fsq.codes(z)
    assert codes.shape == (4, 6, 6)
    assert int(codes.min()) >= 0 and int(codes.max()) < fsq.codebook_size
    torch.testing.assert_close(fsq.from_codes(codes), fsq(z))
    # Every code maps to a distinct grid point and back.
    all_codes = torch.arange(fsq.codebook_size).view(1, -1)
    grid = fsq.from_codes(all_codes)  # (1, D, N)
    assert torch.equal(fsq.codes(torch.atanh(grid.clamp(-0.999, 0.999) * 0.999)), all_codes)


def test_fsq_straight_through_gradient():
    """The rounding passes gradients unchanged: d q / d z equals the derivative of the
    unrounded map, 2 / (L - 1) * d digits / d z = tanh'(z)."""
    fsq = FSQ((7, 4))
    z = torch.randn(3, 2, 5, requires_grad=True, dtype=torch.float64)
    fsq(z).sum().backward()
    expected = 1 - torch.tanh(z.detach()) ** 2
    torch.testing.assert_close(z.grad, expected)


def test_codebook_usage():
    usage = codebook_usage(torch.tensor([0, 1, 2, 3]), 8)
    assert usage["used_fraction"] == 0.5
    assert usage["perplexity"] == pytest.approx(4.0)


def test_fsq_model_tokens():
    model = tiny("tinyfsq")
    x = clip(9)
    codes = model.codes(x)
    assert codes.shape == (2, 3, 4, 4)
    torch.testing.assert_close(model.fsq.from_codes(codes).double(), model.encode(x))


# ---- spatial tiling ----------------------------------------------------------------------
REACH = 8  # latent pixels a change travels through the tiny decoder (measured below)


def test_pixel_norm_decoder_is_local_in_space():
    model = tiny(norm="pixel")
    z = torch.randn(1, 4, 2, 24, 24, dtype=torch.float64)
    bumped = z.clone()
    bumped[..., 12, 12] += 1.0
    changed = (model.decode(bumped) - model.decode(z)).abs().amax(dim=(0, 1, 2)) > 0
    rows = changed.any(1).nonzero().flatten()
    assert rows.min() >= 12 * 8 - REACH * 8 and rows.max() < 13 * 8 + REACH * 8
    assert rows.min() < 12 * 8 - 4 * 8  # it does reach: the bound above is not vacuous


def test_tile_spans_cover_and_overlap():
    assert tile_spans(10, 16, 4) == [(0, 10)]
    assert tile_spans(40, 24, 8) == [(0, 24), (16, 40)]
    spans = tile_spans(70, 16, 4)
    assert spans[0][0] == 0 and spans[-1][1] == 70
    assert all(a[1] - b[0] >= 4 for a, b in zip(spans, spans[1:], strict=False))
    with pytest.raises(ValueError):
        tile_spans(40, 8, 8)
    w = ramp(8, 4, 4)
    assert (w > 0).all() and w[3] < 1 and torch.allclose(ramp(4, 0, 4) + ramp(4, 4, 0), torch.ones(4))


def test_tiles_equal_one_shot_away_from_borders_and_blend_across():
    """A norm-free-in-space decoder (PixelNorm): two tiles of 24 latent pixels sharing 8 along
    the width, streamed in time two latent frames at a time. Columns only one tile covers lie
    at least REACH from that tile's cut edge, so they equal the one-shot decoding exactly;
    across the shared band each pixel is a blend of the two tiles' own decodings, moving from
    the left tile's to the right one's."""
    model = tiny(norm="pixel")
    z = torch.randn(1, 4, 3, 12, 40, dtype=torch.float64)
    one = model.decode(z)
    tiled = model.decode_tiled(z, tile=24, overlap=8, chunk_latents=2)
    band = slice(16 * 8, 24 * 8)
    torch.testing.assert_close(tiled[..., : band.start], one[..., : band.start], rtol=0, atol=1e-10)
    torch.testing.assert_close(tiled[..., band.stop :], one[..., band.stop :], rtol=0, atol=1e-10)
    left, right = model.decode(z[..., :24])[..., band], model.decode(z[..., 16:])[..., : 8 * 8]
    mixed = tiled[..., band]
    lo, hi = torch.minimum(left, right), torch.maximum(left, right)
    assert ((mixed >= lo - 1e-10) & (mixed <= hi + 1e-10)).all()
    assert not torch.allclose(left, right)  # the blend is not trivially between equal values
    gap = (left - right).abs() > 1e-3
    share = ((mixed - right) / (left - right))[gap.expand_as(mixed)].reshape(-1)
    first, last = ((mixed - right) / (left - right))[..., 0], ((mixed - right) / (left - right))[..., -1]
    assert share.min() >= -1e-9 and share.max() <= 1 + 1e-9
    assert first[gap[..., 0]].min() > 0.9 and last[gap[..., -1]].max() < 0.1
    streamed = torch.cat(list(model.decode_tiled_stream(z.split(1, dim=2), tile=24, overlap=8)), dim=2)
    torch.testing.assert_close(streamed, tiled, rtol=0, atol=1e-10)


def test_one_tile_is_the_one_shot_decoding():
    """Group norm reads the whole tile, so only a tile as large as the frame is exact for it;
    that case must be."""
    model = tiny()
    z = torch.randn(1, 4, 3, 6, 10, dtype=torch.float64)
    torch.testing.assert_close(
        model.decode_tiled(z, tile=16, chunk_latents=1), model.decode(z), rtol=0, atol=1e-10
    )


def test_pixels_in_another_convention_get_one_sentence():
    from filmstrip.errors import InputError

    vae = VideoVAE(preset("tiny"))
    with pytest.raises(InputError, match="float pixels in \\[-1, 1\\], got torch.uint8"):
        vae.encode(torch.zeros(1, 3, 5, 16, 16, dtype=torch.uint8))
    with pytest.raises(InputError, match=r"\(B, 3, T, H, W\)"):
        vae.encode(torch.zeros(3, 5, 16, 16))
    with pytest.raises(InputError, match="multiples of the VAE's spatial factor 8"):
        vae.encode(torch.zeros(1, 3, 5, 12, 16))
