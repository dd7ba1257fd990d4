"""Video autoencoders: the causal 3D VAE, its per-frame 2D baseline and the FSQ tokenizer.

One encoder/decoder serves all three; the config picks the variant:

* **3D VAE** (`preset("vae3d")`): causal 3x3x3 convolutions, 4x time and 8x space. A clip of
  1 + 4k frames encodes to 1 + k latent frames, and a single image (T = 1) to one latent
  frame, so one model serves images and video. KL-regularised Gaussian posterior.
* **2D baseline** (`preset("vae2d")`): the same network with 1x3x3 kernels and no temporal
  compression, i.e. an image VAE applied frame by frame. Wider, for a similar parameter
  count; 4 latent channels, for the same 48x compression as the 3D VAE's 16.
* **FSQ** (`preset("fsq3d")`): the 3D network with a finite-scalar-quantisation bottleneck,
  giving discrete video tokens (`codes`).

Layout: pixels are (B, 3, T, H, W) in [-1, 1]; latents (B, C', T', H/8, W/8). The input is
first folded into `patch` x `patch` pixel blocks (space-to-depth), which moves the costly
full-resolution convolutions onto a 4x smaller grid; the remaining factor comes from stride-2
convolutions, the deepest of which also halve time.

Every layer is causal in time (see `causal.py`), so `encode_stream` / `decode_stream` process
a clip of any length in chunks, in memory that does not grow with its length, and give the
one-shot result.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from filmstrip.checkpoint import build_with_weights, load_model, parse_config, resolve
from filmstrip.config import check_types
from filmstrip.device import pick_device
from filmstrip.errors import InputError
from filmstrip.models import num_parameters  # noqa: F401 (part of this module's API)
from filmstrip.models.causal import (
    CausalConv2Plus1d,
    CausalConv3d,
    CausalUpsampleTime,
    FrameGroupNorm,
    LearnedUpsampleTime,
    PixelNorm,
    StreamCache,
    upsample_space,
)
from filmstrip.models.fsq import FSQ
from filmstrip.models.tiling import decode_tiled, decode_tiled_stream


@dataclass(frozen=True)
class VAEConfig:
    in_channels: int = 3
    latent_channels: int = 16  # KL latents; an FSQ bottleneck has len(fsq_levels) channels instead
    spatial_factor: int = 8
    temporal_factor: int = 4
    channels: tuple[int, ...] = (32, 64, 96)  # width per resolution level, finest first
    blocks_per_level: int = 1
    temporal_kernel: int = 3  # 1 makes every layer per-frame: the 2D baseline
    # (2+1)D: each kt x 3 x 3 convolution becomes a 1 x 3 x 3 one in space and a kt x 1 x 1
    # one in time (causal.CausalConv2Plus1d), which buys width at the same parameter count.
    factorized: bool = False
    bottleneck: str = "kl"  # "kl" or "fsq"
    fsq_levels: tuple[int, ...] = (8, 8, 8, 5, 5, 5)
    groups: int = 16
    # "group": GroupNorm per frame (the toy-domain models); "pixel": RMS over each pixel's
    # channels (causal.PixelNorm), which keeps the network local in space so spatial tiles
    # decode exactly away from their borders; what a VAE for large natural frames wants.
    norm: str = "group"
    # How the decoder doubles time: "repeat" each frame, or "learned" (a projection per new
    # frame, see causal.LearnedUpsampleTime). A trained "repeat" decoder loads into "learned".
    time_upsample: str = "repeat"
    # Affine map to unit-scale latents for a diffusion model: z_model = (z - shift) * scale.
    # Measured on the training data after training (see train/vae_task.py).
    latent_shift: float = 0.0
    latent_scale: float = 1.0

    def __post_init__(self):
        check_types(self, "vae")
        object.__setattr__(self, "channels", tuple(self.channels))
        object.__setattr__(self, "fsq_levels", tuple(self.fsq_levels))
        downs = len(self.channels) - 1
        if self.time_upsample not in ("repeat", "learned"):
            raise InputError(f"time_upsample must be 'repeat' or 'learned', got {self.time_upsample!r}")
        if self.norm not in ("group", "pixel"):
            raise InputError(f"norm must be 'group' or 'pixel', got {self.norm!r}")
        if self.bottleneck not in ("kl", "fsq"):
            raise InputError(f"bottleneck must be 'kl' or 'fsq', got {self.bottleneck!r}")
        if self.spatial_factor % 2**downs or not _is_power_of_two(self.spatial_factor // 2**downs):
            raise InputError(
                f"spatial_factor {self.spatial_factor} must be a power of two times 2**{downs} "
                f"(one halving per level after the first)"
            )
        if not _is_power_of_two(self.temporal_factor) or self.temporal_factor > 2**downs:
            raise InputError(f"temporal_factor {self.temporal_factor} must be a power of two <= 2**{downs}")
        if self.temporal_kernel == 1 and self.temporal_factor != 1:
            raise InputError("a per-frame model (temporal_kernel=1) cannot compress time")
        if self.factorized and self.temporal_kernel == 1:
            raise InputError("factorized splits space from time: it needs temporal_kernel > 1")
        if any(c % self.groups for c in self.channels):
            raise InputError(f"every channel width must be divisible by groups={self.groups}")

    @property
    def patch(self) -> int:
        return self.spatial_factor // 2 ** (len(self.channels) - 1)

    @property
    def z_channels(self) -> int:
        return len(self.fsq_levels) if self.bottleneck == "fsq" else self.latent_channels

    @property
    def compression(self) -> float:
        """Input values per latent value."""
        return self.in_channels * self.spatial_factor**2 * self.temporal_factor / self.z_channels

    def conv(self, cin: int, cout: int, stride: tuple[int, int, int] = (1, 1, 1)) -> nn.Module:
        """The network's kt x 3 x 3 convolution: full 3D, or (2+1)D when `factorized`."""
        layer = CausalConv2Plus1d if self.factorized else CausalConv3d
        return layer(cin, cout, (self.temporal_kernel, 3, 3), stride=stride)

    def norm_layer(self, channels: int) -> nn.Module:
        return FrameGroupNorm(self.groups, channels) if self.norm == "group" else PixelNorm(channels)

    def temporal_downsamples(self) -> list[bool]:
        """Which of the stride-2 stages also halve time: the deepest ones, where the grid is
        small and the network has already mixed neighbouring frames."""
        downs = len(self.channels) - 1
        n_time = int(math.log2(self.temporal_factor))
        return [i >= downs - n_time for i in range(downs)]


def _is_power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


PRESETS: dict[str, VAEConfig] = {
    "vae3d": VAEConfig(),
    # 1x3x3 kernels hold a third of the weights of 3x3x3 ones; wider levels restore the budget.
    "vae2d": VAEConfig(latent_channels=4, temporal_factor=1, temporal_kernel=1, channels=(64, 112, 160)),
    "fsq3d": VAEConfig(bottleneck="fsq"),
    # The 3D VAE at the 2D baseline's widths, affordable because its convolutions are (2+1)D.
    "vae3d21": VAEConfig(channels=(64, 112, 160), factorized=True),
    # For tests: a few thousand parameters, same structure.
    "tiny": VAEConfig(latent_channels=4, channels=(8, 16, 16), groups=4),
    "tiny2d": VAEConfig(
        latent_channels=4, temporal_factor=1, temporal_kernel=1, channels=(8, 16, 16), groups=4
    ),
    "tinyfsq": VAEConfig(bottleneck="fsq", fsq_levels=(5, 4, 3), channels=(8, 16, 16), groups=4),
}


def preset(name: str, **overrides) -> VAEConfig:
    if name not in PRESETS:
        raise InputError(f"unknown VAE preset {name!r}; choose from {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)


class ResBlock(nn.Module):
    def __init__(self, cfg: VAEConfig, cin: int, cout: int):
        super().__init__()
        self.norm1 = cfg.norm_layer(cin)
        self.conv1 = cfg.conv(cin, cout)
        self.norm2 = cfg.norm_layer(cout)
        self.conv2 = cfg.conv(cout, cout)
        self.skip = nn.Conv3d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, cache: StreamCache | None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)), cache)
        h = self.conv2(F.silu(self.norm2(h)), cache)
        return self.skip(x) + h


class Encoder(nn.Module):
    def __init__(self, cfg: VAEConfig, out_channels: int):
        super().__init__()
        ch = cfg.channels
        self.patch = cfg.patch
        self.conv_in = cfg.conv(cfg.in_channels * cfg.patch**2, ch[0])
        self.levels = nn.ModuleList()
        self.downs = nn.ModuleList()
        time_down = cfg.temporal_downsamples()
        prev = ch[0]
        for i, width in enumerate(ch):
            blocks = [ResBlock(cfg, prev if j == 0 else width, width) for j in range(cfg.blocks_per_level)]
            self.levels.append(nn.ModuleList(blocks))
            prev = width
            if i < len(ch) - 1:
                st = 2 if time_down[i] else 1
                self.downs.append(cfg.conv(width, width, stride=(st, 2, 2)))
        self.mid = ResBlock(cfg, prev, prev)
        self.norm_out = cfg.norm_layer(prev)
        self.conv_out = cfg.conv(prev, out_channels)

    def forward(self, x_bcthw: torch.Tensor, cache: StreamCache | None = None) -> torch.Tensor:
        p = self.patch
        h = rearrange(x_bcthw, "b c t (h p1) (w p2) -> b (c p1 p2) t h w", p1=p, p2=p)
        h = self.conv_in(h, cache)
        for i, blocks in enumerate(self.levels):
            for block in blocks:
                h = block(h, cache)
            if i < len(self.downs):
                h = self.downs[i](h, cache)
        h = self.mid(h, cache)
        return self.conv_out(F.silu(self.norm_out(h)), cache)


class Decoder(nn.Module):
    def __init__(self, cfg: VAEConfig, in_channels: int):
        super().__init__()
        ch = cfg.channels
        self.patch = cfg.patch
        self.conv_in = cfg.conv(in_channels, ch[-1])
        self.mid = ResBlock(cfg, ch[-1], ch[-1])
        self.levels = nn.ModuleList()
        self.ups = nn.ModuleList()
        self.time_ups = nn.ModuleList()
        self.up_time = list(reversed(cfg.temporal_downsamples()))
        prev = ch[-1]
        for i, width in enumerate(reversed(ch)):
            blocks = [ResBlock(cfg, prev if j == 0 else width, width) for j in range(cfg.blocks_per_level)]
            self.levels.append(nn.ModuleList(blocks))
            prev = width
            if i < len(ch) - 1:
                nxt = ch[-2 - i]
                learned = cfg.time_upsample == "learned" and self.up_time[i]
                self.time_ups.append(LearnedUpsampleTime(width) if learned else CausalUpsampleTime())
                self.ups.append(cfg.conv(width, nxt))
                prev = nxt
        self.norm_out = cfg.norm_layer(prev)
        self.conv_out = cfg.conv(prev, cfg.in_channels * cfg.patch**2)

    def forward(self, z_bcthw: torch.Tensor, cache: StreamCache | None = None) -> torch.Tensor:
        h = self.mid(self.conv_in(z_bcthw, cache), cache)
        for i, blocks in enumerate(self.levels):
            for block in blocks:
                h = block(h, cache)
            if i < len(self.ups):
                if self.up_time[i]:
                    h = self.time_ups[i](h, cache)
                h = self.ups[i](upsample_space(h), cache)
        h = self.conv_out(F.silu(self.norm_out(h)), cache)
        p = self.patch
        return rearrange(h, "b (c p1 p2) t h w -> b c t (h p1) (w p2)", p1=p, p2=p)


@dataclass
class Encoding:
    """What the encoder says about a clip: the posterior mean and log-variance (KL), or the
    quantised latents with log-variance None (FSQ)."""

    mean: torch.Tensor
    logvar: torch.Tensor | None = None

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.logvar is None:
            return self.mean
        noise = torch.randn(
            self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype
        )
        return self.mean + (0.5 * self.logvar).exp() * noise

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) per latent value, averaged; 0 for FSQ."""
        if self.logvar is None:
            return self.mean.new_zeros(())
        m, lv = self.mean.float(), self.logvar.float()
        return 0.5 * (m.square() + lv.exp() - 1 - lv).mean()


class VideoVAE(nn.Module):
    """Encode (B, 3, T, H, W) pixels to latents and back. T may be any length >= 1; H and W
    must be multiples of `spatial_factor`."""

    kind = "vae"

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        moments = 2 * cfg.latent_channels if cfg.bottleneck == "kl" else len(cfg.fsq_levels)
        self.encoder = Encoder(cfg, moments)
        self.decoder = Decoder(cfg, cfg.z_channels)
        self.fsq = FSQ(cfg.fsq_levels) if cfg.bottleneck == "fsq" else None

    # ---- shape rules -------------------------------------------------------------------
    def latent_frames(self, num_frames: int) -> int:
        """1 + ceil((T - 1) / tf): a clip that is not 1 + tf*k long is padded at its end by
        repeating its last frame, and the padding is cropped off after decoding."""
        return 1 + -(-(num_frames - 1) // self.cfg.temporal_factor)

    def pixel_frames(self, latent_frames: int) -> int:
        return 1 + (latent_frames - 1) * self.cfg.temporal_factor

    def check_input(self, x_bcthw: torch.Tensor) -> None:
        f = self.cfg.spatial_factor
        if x_bcthw.ndim != 5 or x_bcthw.shape[1] != self.cfg.in_channels:
            raise InputError(
                f"expected pixels of shape (B, {self.cfg.in_channels}, T, H, W), got {tuple(x_bcthw.shape)}"
            )
        if not x_bcthw.is_floating_point():
            raise InputError(
                f"the VAE encodes float pixels in [-1, 1], got {x_bcthw.dtype} (filmstrip.io.layout.from_uint8 converts)"
            )
        _, _, t, h, w = x_bcthw.shape
        if t < 1 or h < f or w < f or h % f or w % f:
            raise InputError(
                f"a {h}x{w} frame cannot be encoded: height and width must be positive multiples of "
                f"the VAE's spatial factor {f} (resize or crop to e.g. {max(f, h // f * f)}x{max(f, w // f * f)})"
            )

    def _pad_time(self, x_bcthw: torch.Tensor) -> torch.Tensor:
        t = x_bcthw.shape[2]
        missing = self.pixel_frames(self.latent_frames(t)) - t
        if missing:
            x_bcthw = torch.cat([x_bcthw, x_bcthw[:, :, -1:].expand(-1, -1, missing, -1, -1)], dim=2)
        return x_bcthw

    # ---- one shot ----------------------------------------------------------------------
    def _moments(self, x_bcthw: torch.Tensor, cache: StreamCache | None = None) -> Encoding:
        h = self.encoder(x_bcthw, cache)
        if self.fsq is not None:
            return Encoding(self.fsq(h), None)
        mean, logvar = h.chunk(2, dim=1)
        return Encoding(mean, logvar.clamp(-30.0, 20.0))

    def encode_dist(self, x_bcthw: torch.Tensor) -> Encoding:
        self.check_input(x_bcthw)
        return self._moments(self._pad_time(x_bcthw))

    def encode(self, x_bcthw: torch.Tensor) -> torch.Tensor:
        """Deterministic latents (posterior mean, or quantised values): (B, C', T', H', W')."""
        return self.encode_dist(x_bcthw).mean

    def decode(self, z_bcthw: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        """Latents -> pixels (B, 3, 1 + tf*(T'-1), H, W), cropped to num_frames if given."""
        if z_bcthw.ndim != 5 or z_bcthw.shape[1] != self.cfg.z_channels:
            raise InputError(
                f"expected latents of shape (B, {self.cfg.z_channels}, T', H', W'), got {tuple(z_bcthw.shape)}"
            )
        x = self.decoder(z_bcthw)
        return x[:, :, :num_frames] if num_frames is not None else x

    def forward(self, x_bcthw: torch.Tensor, generator: torch.Generator | None = None):
        """Training pass: sample the posterior, decode, crop to the input length.
        Returns (reconstruction, Encoding)."""
        enc = self.encode_dist(x_bcthw)
        return self.decode(enc.sample(generator), x_bcthw.shape[2]), enc

    def codes(self, x_bcthw: torch.Tensor) -> torch.Tensor:
        """Discrete tokens (B, T', H', W') of an FSQ model."""
        if self.fsq is None:
            raise InputError("codes() needs an FSQ model (bottleneck='fsq'); this one is a KL VAE")
        self.check_input(x_bcthw)
        return self.fsq.codes(self.encoder(self._pad_time(x_bcthw)).float())

    # ---- streaming ---------------------------------------------------------------------
    def encode_stream(self, chunks: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        """Encode a clip given as consecutive (B, 3, t_i, H, W) chunks of any sizes; yields
        latent chunks whose concatenation equals `encode` of the whole clip. Frames are
        regrouped as 1, tf, tf, ... so each group yields one latent frame; a short last
        group is padded like `encode` pads."""
        cache, pending, first = StreamCache(), [], True
        tf = self.cfg.temporal_factor
        for chunk in chunks:
            self.check_input(chunk)
            pending.append(chunk)
            buffered = torch.cat(pending, dim=2)
            n = (buffered.shape[2] - 1) // tf + 1 if first else buffered.shape[2] // tf
            if n == 0:
                pending = [buffered]
                continue
            used = 1 + (n - 1) * tf if first else n * tf
            yield self._moments(buffered[:, :, :used], cache).mean
            pending, first = [buffered[:, :, used:]], False
        rest = torch.cat(pending, dim=2) if pending else None
        if rest is not None and rest.shape[2] > 0:
            pad = tf - rest.shape[2]
            rest = torch.cat([rest, rest[:, :, -1:].expand(-1, -1, pad, -1, -1)], dim=2)
            yield self._moments(rest, cache).mean

    def decode_stream(self, latent_chunks: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        """Decode consecutive latent chunks (B, C', t_i, H', W'); yields pixel chunks whose
        concatenation equals `decode` of the whole latent clip."""
        cache = StreamCache()
        for z in latent_chunks:
            yield self.decoder(z, cache)

    def decode_tiled_stream(
        self, latent_chunks: Iterable[torch.Tensor], tile: int = 32, overlap: int = 8
    ) -> Iterator[torch.Tensor]:
        """`decode_stream` in overlapping spatial tiles of `tile` latent pixels, blended
        across each `overlap` (see tiling.py): memory bounded in time; in space only the
        tiles' caches grow with the frame (`decode_tiled` holds one tile at a time)."""
        return decode_tiled_stream(
            self.decoder, StreamCache, latent_chunks, self.cfg.spatial_factor, tile, overlap
        )

    def encode_chunked(self, x_bcthw: torch.Tensor, chunk_frames: int = 16) -> torch.Tensor:
        self.check_input(x_bcthw)
        pieces = x_bcthw.split(chunk_frames, dim=2)
        return torch.cat(list(self.encode_stream(pieces)), dim=2)

    def decode_chunked(
        self, z_bcthw: torch.Tensor, chunk_latents: int = 4, num_frames: int | None = None
    ) -> torch.Tensor:
        x = torch.cat(list(self.decode_stream(z_bcthw.split(chunk_latents, dim=2))), dim=2)
        return x[:, :, :num_frames] if num_frames is not None else x

    def decode_tiled(
        self,
        z_bcthw: torch.Tensor,
        tile: int = 32,
        overlap: int = 8,
        chunk_latents: int = 4,
        num_frames: int | None = None,
    ) -> torch.Tensor:
        """`decode` in overlapping spatial tiles, one tile at a time through all of time."""
        x = decode_tiled(
            self.decoder, StreamCache, z_bcthw, self.cfg.spatial_factor, tile, overlap, chunk_latents
        )
        return x[:, :, :num_frames] if num_frames is not None else x

    # ---- latents for diffusion ---------------------------------------------------------
    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        return normalize_latents(z, self.cfg.latent_shift, self.cfg.latent_scale)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return denormalize_latents(z, self.cfg.latent_shift, self.cfg.latent_scale)


def normalize_latents(z: torch.Tensor, shift: float, scale: float) -> torch.Tensor:
    """VAE latents -> the unit-variance latents a diffusion model works on (the one place that
    says how; `shift` and `scale` are measured when the VAE is exported)."""
    return (z - shift) * scale


def denormalize_latents(z: torch.Tensor, shift: float, scale: float) -> torch.Tensor:
    return z / scale + shift


def load_vae(path: str | Path | None = None, device: torch.device | str = "cpu") -> VideoVAE:
    """A trained autoencoder from a model directory or a bundled model's name (default: the
    bundled 3D VAE), in eval mode, on `device` ("auto": a CUDA GPU when one is visible)."""
    device = pick_device(device)
    directory = resolve(path, "vae3d")
    config, state, _ = load_model(directory, VideoVAE.kind)
    cfg = parse_config(directory, VAEConfig, config)
    model = build_with_weights(directory, lambda: VideoVAE(cfg), state)
    return model.to(device).eval()
