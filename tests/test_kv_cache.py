"""The block-causal DiT and its KV cache: causality, cache == full pass, eviction, positions."""

import pytest
import torch
from conftest import causal_inputs as inputs
from conftest import causal_model

from filmstrip.errors import InputError
from filmstrip.models.conditioning import Conditioning
from filmstrip.models.dit import VideoDiT, block_causal_mask, preset
from filmstrip.models.kv_cache import CacheConfig, KVCache


def test_block_causal_mask_shape_and_pattern():
    m = block_causal_mask(3, 2, past_frames=1)
    assert m.shape == (6, 8)
    assert m[:, :2].all()  # every token sees the cached frame
    assert m[0, 2:4].all() and not m[0, 4:].any()  # frame 0 sees itself, not frames 1, 2
    assert m[5, 2:].all()  # the last frame sees everything
    assert block_causal_mask(1, 4) is None


def test_changing_a_later_frame_never_changes_an_earlier_output():
    model = causal_model()
    z, t, cond = inputs()
    with torch.no_grad():
        out = model(z, t, cond)
        z2, t2 = z.clone(), t.clone()
        z2[:, :, 4:] += torch.randn_like(z2[:, :, 4:])
        t2[:, 4:] = 0.9
        out2 = model(z2, t2, cond)
    assert torch.equal(out[:, :, :4], out2[:, :, :4])
    assert not torch.allclose(out[:, :, 4:], out2[:, :, 4:])
    # The bidirectional model with the same weights is not causal.
    bidir = VideoDiT(preset("tiny", in_channels=4, context_dim=32)).double().eval()
    bidir.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert not torch.allclose(bidir(z, t, cond)[:, :, :4], bidir(z2, t2, cond)[:, :, :4])


@pytest.mark.parametrize("chunks", [(1, 1, 1, 1, 1, 1), (2, 3, 1), (6,)])
def test_kv_cache_rollout_equals_one_full_pass(chunks):
    model = causal_model()
    z, t, cond = inputs()
    cache = KVCache.for_model(model, CacheConfig(window=0, sink=0))
    with torch.no_grad():
        full = model(z, t, cond)
        pieces, start = [], 0
        for n in chunks:
            sl = slice(start, start + n)
            pieces.append(model(z[:, :, sl], t[:, sl], cond, cache=cache, write=True))
            start += n
    assert cache.frames == 6 and cache.made == 6
    torch.testing.assert_close(torch.cat(pieces, dim=2), full, rtol=0, atol=1e-12)


def test_reading_the_cache_without_writing_leaves_it_unchanged():
    model = causal_model()
    z, t, cond = inputs()
    cache = KVCache.for_model(model, CacheConfig(window=0, sink=0))
    with torch.no_grad():
        model(z[:, :, :3], t[:, :3], cond, cache=cache, write=True)
        before = [k.clone() for k in cache.keys]
        a = model(z[:, :, 3:4], t[:, 3:4], cond, cache=cache)
        b = model(z[:, :, 3:4], t[:, 3:4], cond, cache=cache)  # a denoising step reads only
        full = model(z[:, :, :4], t[:, :4], cond)
    assert cache.frames == 3 and all(torch.equal(x, y) for x, y in zip(before, cache.keys, strict=True))
    assert torch.equal(a, b)
    torch.testing.assert_close(a, full[:, :, 3:], rtol=0, atol=1e-12)


def test_rope_positions_continue_across_chunks():
    model = causal_model()
    cache = KVCache.for_model(model, CacheConfig(window=0, sink=0))
    z, t, cond = inputs(frames=2)
    assert cache.next_positions(2).tolist() == [0.0, 1.0]
    with torch.no_grad():
        model(z, t, cond, cache=cache, write=True)
    assert cache.next_positions(3).tolist() == [2.0, 3.0, 4.0]
    assert cache.times.tolist() == [0, 1]


def test_window_eviction_keeps_the_sinks_and_bounds_memory():
    model = causal_model()
    cache = KVCache.for_model(model, CacheConfig(window=3, sink=1, positions="reindex"))
    z, t, cond = inputs(frames=1)
    sizes = []
    with torch.no_grad():
        for _ in range(9):
            model(z, t, cond, cache=cache, write=True)
            sizes.append(cache.nbytes())
    assert cache.times.tolist() == [0, 6, 7, 8]  # the sink, then the newest three
    assert cache.made == 9
    assert sizes[3:] == [sizes[3]] * 6  # flat once the window is full
    # Reindexed, the kept frames sit at 0..3 and the next at 4; continued, at their own times.
    assert cache.positions().tolist() == [0.0, 1.0, 2.0, 3.0]
    assert cache.next_positions(1).tolist() == [4.0]
    cont = KVCache.for_model(model, CacheConfig(window=3, sink=1, positions="continue"))
    with torch.no_grad():
        for _ in range(9):
            model(z, t, cond, cache=cont, write=True)
    assert cont.positions().tolist() == [0.0, 6.0, 7.0, 8.0]
    assert cont.next_positions(1).tolist() == [9.0]


def test_without_sinks_continued_and_reindexed_positions_give_the_same_rollout():
    # RoPE sees only differences: a rolling window without sinks shifts every position alike.
    model = causal_model()
    z, t, cond = inputs(frames=7)
    outs = {}
    for positions in ("continue", "reindex"):
        cache = KVCache.for_model(model, CacheConfig(window=2, sink=0, positions=positions))
        with torch.no_grad():
            outs[positions] = torch.cat(
                [model(z[:, :, k : k + 1], t[:, k : k + 1], cond, cache=cache, write=True) for k in range(7)],
                2,
            )
    torch.testing.assert_close(outs["continue"], outs["reindex"], rtol=0, atol=1e-10)
    # ...and the rolling window really forgets: frame 6 differs from the full pass.
    with torch.no_grad():
        full = model(z, t, cond)
    torch.testing.assert_close(outs["reindex"][:, :, :3], full[:, :, :3], rtol=0, atol=1e-12)
    assert not torch.allclose(outs["reindex"][:, :, 6], full[:, :, 6])


def test_truncate_rolls_back_a_chunk():
    model = causal_model()
    z, t, cond = inputs(frames=4)
    cache = KVCache.for_model(model, CacheConfig(window=0, sink=0))
    with torch.no_grad():
        model(z[:, :, :3], t[:, :3], cond, cache=cache, write=True)
        model(z[:, :, 3:], t[:, 3:], cond, cache=cache, write=True)
        cache.truncate(3)
        again = model(z[:, :, 3:], t[:, 3:], cond, cache=cache, write=True)
        full = model(z, t, cond)
    torch.testing.assert_close(again, full[:, :, 3:], rtol=0, atol=1e-12)
    with pytest.raises(InputError, match="cannot truncate"):
        cache.truncate(9)


def test_cache_errors_are_sentences():
    with pytest.raises(InputError, match="causal DiT needs attention='full'"):
        preset("tiny", causal=True, attention="factorized")
    bidir = VideoDiT(preset("tiny", in_channels=4, context_dim=0))
    with pytest.raises(InputError, match="causal DiT"):
        KVCache.for_model(bidir)
    with pytest.raises(InputError, match="positions must be one of"):
        CacheConfig(positions="absolute")
    model = causal_model()
    z, t, cond = inputs(frames=2)
    cache = KVCache.for_model(model)
    with torch.no_grad():
        model(z, t, cond, cache=cache, write=True)
        z1, t1, c1 = inputs(b=1, frames=1)
        with pytest.raises(InputError, match="batch of 2 rows"):
            model(z1, t1, c1, cache=cache)


def test_the_prompt_is_computed_once_per_prompt_and_a_new_prompt_is_not_served_stale():
    # A refiner model: the refined text and each block's cross-attention keys are memoised.
    model = causal_model(context_dim=64, text_refiner=1)
    g = torch.Generator().manual_seed(2)
    z, t, _ = inputs(frames=4)
    mask = torch.ones(2, 5, dtype=torch.bool)
    a = Conditioning(torch.randn(2, 5, 64, generator=g, dtype=torch.float64), mask)
    b = Conditioning(torch.randn(2, 5, 64, generator=g, dtype=torch.float64), mask)
    cache = KVCache.for_model(model, CacheConfig(window=0, sink=0))
    with torch.no_grad():
        full = model(z, t, a)
        made = torch.cat(
            [model(z[:, :, k : k + 1], t[:, k : k + 1], a, cache=cache, write=True) for k in range(3)], 2
        )
        torch.testing.assert_close(made, full[:, :, :3], rtol=0, atol=1e-12)
        under_b = model(z[:, :, 3:], t[:, 3:], b, cache=cache)
        cache._memo.clear()  # as if the cache had never seen prompt a's text
        fresh = model(z[:, :, 3:], t[:, 3:], b, cache=cache)
    assert torch.equal(under_b, fresh)
    assert set(cache._memo) == {"text", "cross0", "cross1"}
