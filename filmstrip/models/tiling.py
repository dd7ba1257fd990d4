"""Spatial tiling for decoding large frames in bounded memory, blended so no seam shows.

A causal decoder already streams in time (`VideoVAE.decode_stream`): memory does not grow
with a clip's length. Its activations still grow with H x W, so a 1080p frame at full width
does not fit where a 256 px one does. Tiling cuts the latent grid into overlapping tiles,
streams each tile through the decoder with its own cache, and blends the tiles' pixels
with weights that ramp linearly across each overlap, so a pixel in an overlap is a convex
combination of both tiles' decodings and the seam fades over the overlap's width.

Two things make a tile's pixels differ from the one-shot decoding: near a cut edge the
convolutions see padding instead of the neighbour (the decoder's receptive field is about
eight latent pixels), and the decoder's per-frame GroupNorm measures its statistics over the
tile instead of the frame. The first is why tiles overlap; the second is why tiles are big
by default (32 latent pixels, 256 px): the larger the tile, the closer its statistics are to
the frame's. Pixels of a norm-free decoder farther than the receptive field from every cut
edge equal the one-shot decoding exactly (tests/test_models_vae.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch

from filmstrip.errors import InputError


def tile_spans(size: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """(start, stop) of tiles covering [0, size): `tile` long, consecutive ones sharing at
    least `overlap`; the last is moved back to end at `size` (so it may overlap more)."""
    if tile <= overlap or overlap < 0:
        raise InputError(f"a tile ({tile}) must be longer than its overlap ({overlap}), which is >= 0")
    if size <= tile:
        return [(0, size)]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride)) + [size - tile]
    return [(s, s + tile) for s in starts]


def ramp(length: int, fade_in: int, fade_out: int) -> torch.Tensor:
    """Weights along one axis of a tile: rising over its first `fade_in` values, 1 in the
    middle, falling over its last `fade_out`; never 0, so every pixel has some weight."""
    w = torch.ones(length)
    if fade_in:
        w[:fade_in] = (torch.arange(fade_in) + 0.5) / fade_in
    if fade_out:
        w[length - fade_out :] = torch.minimum(
            w[length - fade_out :], (torch.arange(fade_out, 0, -1) - 0.5) / fade_out
        )
    return w


def _fades(spans: list[tuple[int, int]], k: int) -> tuple[int, int]:
    """How far tile k overlaps its previous and next neighbours."""
    start, stop = spans[k]
    fade_in = spans[k - 1][1] - start if k > 0 else 0
    fade_out = stop - spans[k + 1][0] if k + 1 < len(spans) else 0
    return fade_in, fade_out


def _tiles(
    h: int, w: int, tile: int, overlap: int, scale: int
) -> Iterator[tuple[slice, slice, torch.Tensor]]:
    """Each tile of an h x w latent grid: its latent rows and columns and its (H, W) pixel
    blending weights (ramps across the overlaps it shares)."""
    rows, cols = tile_spans(h, tile, overlap), tile_spans(w, tile, overlap)
    for i, (y0, y1) in enumerate(rows):
        wy = ramp((y1 - y0) * scale, *(f * scale for f in _fades(rows, i)))
        for j, (x0, x1) in enumerate(cols):
            wx = ramp((x1 - x0) * scale, *(f * scale for f in _fades(cols, j)))
            yield slice(y0, y1), slice(x0, x1), wy[:, None] * wx[None, :]


class _Blend:
    """The running weighted sum of tiles' pixels over a frame, and the weights' sum."""

    def __init__(self, h: int, w: int, scale: int):
        self.h, self.w, self.scale = h, w, scale
        self.out = self.weight = None

    def add(self, pixels: torch.Tensor, ys: slice, xs: slice, wyx: torch.Tensor) -> None:
        if self.out is None:
            self.out = pixels.new_zeros(*pixels.shape[:3], self.h * self.scale, self.w * self.scale)
            self.weight = pixels.new_zeros(self.h * self.scale, self.w * self.scale)
        s = self.scale
        rows, cols = slice(ys.start * s, ys.stop * s), slice(xs.start * s, xs.stop * s)
        wyx = wyx.to(pixels)
        self.out[..., rows, cols] += pixels * wyx
        self.weight[rows, cols] += wyx

    def result(self) -> torch.Tensor:
        return self.out / self.weight


def decode_tiled_stream(
    decode_chunk: Callable[[torch.Tensor, object], torch.Tensor],
    new_cache: Callable[[], object],
    latent_chunks: Iterable[torch.Tensor],
    scale: int,
    tile: int = 32,
    overlap: int = 8,
) -> Iterator[torch.Tensor]:
    """Decode latent chunks (B, C, t_i, H', W') tile by tile; yields blended pixel chunks
    (B, 3, t, H' * scale, W' * scale) as they come. `decode_chunk(z, cache)` decodes one
    tile's chunk with that tile's own stream cache (made by `new_cache`); `scale` is the
    decoder's spatial factor; `tile` and `overlap` are in latent pixels. Every tile's cache
    (the last frames of each layer) stays alive between chunks, so memory still grows with
    the frame's area, though far slower than whole frames' activations; `decode_tiled`
    holds one tile at a time instead."""
    caches: dict[tuple[int, int], object] = {}
    for z in latent_chunks:
        blend = _Blend(*z.shape[-2:], scale)
        for ys, xs, wyx in _tiles(*z.shape[-2:], tile, overlap, scale):
            cache = caches.setdefault((ys.start, xs.start), new_cache())
            blend.add(decode_chunk(z[..., ys, xs], cache), ys, xs, wyx)
        yield blend.result()


def decode_tiled(
    decode_chunk: Callable[[torch.Tensor, object], torch.Tensor],
    new_cache: Callable[[], object],
    z_bcthw: torch.Tensor,
    scale: int,
    tile: int = 32,
    overlap: int = 8,
    chunk_latents: int = 4,
) -> torch.Tensor:
    """The same blend as `decode_tiled_stream` for a whole latent clip, tile by tile: each
    tile streams through all of time before the next starts, so only one tile's cache and
    activations are alive beside the output clip."""
    blend = _Blend(*z_bcthw.shape[-2:], scale)
    for ys, xs, wyx in _tiles(*z_bcthw.shape[-2:], tile, overlap, scale):
        cache = new_cache()
        chunks = z_bcthw[..., ys, xs].split(chunk_latents, dim=2)
        blend.add(torch.cat([decode_chunk(c, cache) for c in chunks], dim=2), ys, xs, wyx)
    return blend.result()
