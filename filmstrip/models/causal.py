"""Causal convolution in time, and the cache that lets it run on a clip chunk by chunk.

A causal layer sees only the present and the past, so output frame t never depends on input
frames after t. Two consequences carry the video VAE:

* A clip can be processed in chunks: each layer keeps the few input frames that its next
  window still needs (`StreamCache`), and the concatenated chunk outputs equal the one-shot
  output exactly. Memory then depends on the chunk, not the clip length.
* A single image is just a clip of one frame: the past is padded by repeating the first
  frame, so an image reads as a still shot that was always there.

Every layer here takes `cache=None` (one shot) or a `StreamCache` shared by all layers of a
model for one stream.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class StreamCache:
    """Per-layer state for chunked processing: the input frames a layer has received but not
    yet used up, plus a flag for layers that treat the first chunk specially. Keyed by layer
    object, so one cache serves a whole encoder or decoder."""

    def __init__(self) -> None:
        self.tails: dict[nn.Module, torch.Tensor] = {}
        self.started: set[nn.Module] = set()

    def num_cached_frames(self) -> int:
        return sum(t.shape[2] for t in self.tails.values())


class CausalConv3d(nn.Module):
    """Conv3d over (B, C, T, H, W) that pads only the past in time (by repeating the first
    frame) and pads space symmetrically. With temporal stride s, output frame j reads padded
    input frames [j*s, j*s + kt), so a clip of 1 + s*k frames gives 1 + k frames."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int, int] = (3, 3, 3),
        stride: tuple[int, int, int] = (1, 1, 1),
    ):
        super().__init__()
        kt, kh, kw = kernel
        self.kernel_t, self.stride_t = kt, stride[0]
        self.conv = nn.Conv3d(in_channels, out_channels, kernel, stride=stride, padding=(0, kh // 2, kw // 2))
        if kt > 1:
            # Start as a per-frame 2D convolution: the newest tap gets a 2D layer's default
            # init and the past taps start at zero. Mixing in the past then has to earn its
            # place; from a random 3D init, every frame begins as a blend of its
            # predecessors (ghosting), which training was measured to undo only slowly.
            with torch.no_grad():
                flat = nn.Conv2d(in_channels, out_channels, (kh, kw))
                self.conv.weight.zero_()
                self.conv.weight[:, :, -1].copy_(flat.weight)
                self.conv.bias.copy_(flat.bias)

    def forward(self, x_bcthw: torch.Tensor, cache: StreamCache | None = None) -> torch.Tensor:
        if cache is not None and self in cache.tails:
            x_bcthw = torch.cat([cache.tails[self], x_bcthw], dim=2)
        elif self.kernel_t > 1:
            first = x_bcthw[:, :, :1]
            x_bcthw = torch.cat([first.expand(-1, -1, self.kernel_t - 1, -1, -1), x_bcthw], dim=2)
        length = x_bcthw.shape[2]
        num_out = max(0, (length - self.kernel_t) // self.stride_t + 1)
        if cache is not None:
            # Keep every frame from the next window's start on: the overlap (kt - s frames)
            # plus anything that did not yet fill a window. A copy: a view would keep the
            # whole chunk's input alive until the next chunk.
            cache.tails[self] = x_bcthw[:, :, num_out * self.stride_t :].detach().clone()
        if num_out == 0:
            b, _, _, h, w = x_bcthw.shape
            sh, sw = self.conv.stride[1:]
            ph, pw = self.conv.padding[1:]
            kh, kw = self.conv.kernel_size[1:]
            shape = (b, self.conv.out_channels, 0, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)
            return x_bcthw.new_zeros(shape)
        return self.conv(x_bcthw)


class CausalConv2Plus1d(nn.Module):
    """A (2+1)D factorisation of `CausalConv3d`: a 1 x kh x kw convolution in space followed
    by a kt x 1 x 1 causal convolution in time, with the temporal stride on the second. For C
    channels it holds C^2 (kh kw + kt) weights instead of C^2 kh kw kt, so a network can be
    as wide as a per-frame one at a similar budget. The temporal layer starts as the identity
    on the present frame, so a fresh layer is exactly a 2D convolution and time mixing has to
    earn its place (as in `CausalConv3d`)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int, int] = (3, 3, 3),
        stride: tuple[int, int, int] = (1, 1, 1),
    ):
        super().__init__()
        kt, kh, kw = kernel
        self.space = CausalConv3d(in_channels, out_channels, (1, kh, kw), stride=(1, *stride[1:]))
        self.time = CausalConv3d(out_channels, out_channels, (kt, 1, 1), stride=(stride[0], 1, 1))
        with torch.no_grad():
            self.time.conv.weight.zero_()
            self.time.conv.weight[:, :, -1, 0, 0].copy_(torch.eye(out_channels))
            self.time.conv.bias.zero_()

    def forward(self, x_bcthw: torch.Tensor, cache: StreamCache | None = None) -> torch.Tensor:
        return self.time(self.space(x_bcthw, cache), cache)


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm with statistics per frame. Normalising over time would let later frames
    change earlier ones, and would make chunked results differ from one-shot results."""

    def forward(self, x_bcthw: torch.Tensor) -> torch.Tensor:
        t = x_bcthw.shape[2]
        x = rearrange(x_bcthw, "b c t h w -> (b t) c h w")
        return rearrange(super().forward(x), "(b t) c h w -> b c t h w", t=t)


class PixelNorm(nn.Module):
    """RMS over the channels of each pixel of each frame, then a learned gain and bias.
    Unlike `FrameGroupNorm` it reads no other pixel, so a network built on it is local in
    space: a tile decodes to exactly the frame's pixels wherever the convolutions' receptive
    field stays inside the tile (tiling.py). Wan's and LTX-Video's VAEs normalise this way."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x_bcthw: torch.Tensor) -> torch.Tensor:
        x = x_bcthw.to(torch.promote_types(x_bcthw.dtype, torch.float32))
        x = x * torch.rsqrt(x.square().mean(1, keepdim=True) + self.eps)
        shape = (1, -1, 1, 1, 1)
        return (x * self.weight.view(shape) + self.bias.view(shape)).to(x_bcthw.dtype)


class CausalUpsampleTime(nn.Module):
    """Doubles the frame count causally: each frame is repeated twice, except the very first
    frame of a stream, which stays single. So 1 + k frames become 1 + 2k, the inverse of a
    stride-2 causal convolution."""

    def forward(self, x_bcthw: torch.Tensor, cache: StreamCache | None = None) -> torch.Tensor:
        return _single_first_frame(self, x_bcthw.repeat_interleave(2, dim=2), cache)


def _single_first_frame(layer: nn.Module, doubled: torch.Tensor, cache: StreamCache | None) -> torch.Tensor:
    """Drop the first of the two frames made from a stream's very first frame, so 1 + k
    frames double to 1 + 2k; later chunks of the stream keep both."""
    if cache is None or layer not in cache.started:
        doubled = doubled[:, :, 1:]
        if cache is not None and doubled.shape[2] > 0:
            cache.started.add(layer)
    return doubled


class LearnedUpsampleTime(nn.Module):
    """Doubles the frame count causally like `CausalUpsampleTime`, but each of the two new
    frames gets its own learned projection (depth-to-time: C channels -> 2C -> two frames of
    C). After a plain repeat the two copies are identical, and only the few causal
    convolutions that follow can tell them apart; with this, the latent can say where an
    object is in each of the frames it stands for. Starts as an exact repeat (both halves
    of the kernel are the identity), so it can replace `CausalUpsampleTime` in a trained
    decoder without changing its output."""

    def __init__(self, channels: int, kernel: int = 3):
        super().__init__()
        self.proj = nn.Conv3d(
            channels, 2 * channels, (1, kernel, kernel), padding=(0, kernel // 2, kernel // 2)
        )
        with torch.no_grad():
            self.proj.weight.zero_()
            self.proj.bias.zero_()
            eye = torch.eye(channels)
            self.proj.weight[:channels, :, 0, kernel // 2, kernel // 2] = eye
            self.proj.weight[channels:, :, 0, kernel // 2, kernel // 2] = eye

    def forward(self, x_bcthw: torch.Tensor, cache: StreamCache | None = None) -> torch.Tensor:
        doubled = rearrange(self.proj(x_bcthw), "b (two c) t h w -> b c (t two) h w", two=2)
        return _single_first_frame(self, doubled, cache)


def upsample_space(x_bcthw: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour 2x in height and width, frame by frame."""
    return F.interpolate(x_bcthw, scale_factor=(1, 2, 2), mode="nearest")
