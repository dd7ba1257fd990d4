"""LPIPS (Zhang et al. 2018) in its shift-tolerant form, ST-LPIPS (Ghildyal & Liu 2022): the
distance between two images as the weighted squared difference of their unit-normalised
AlexNet (or VGG-16) activations at five depths, averaged over space and summed over depths.

The only LPIPS weights that install offline are ST-LPIPS's: the PyPI wheel `stlpips-pytorch`
ships the trunk *and* the linear heads (the classic `lpips` package downloads its trunk from
torchvision at run time). ST-LPIPS differs from LPIPS in the trunk: every stride becomes a
stride-1 layer followed by a blur pool (a binomial [1, 2, 1] filter, reflection padding, then
subsampling), so a one-pixel shift, which codecs and generators make all the time, costs
almost nothing while blur and noise still do. Its numbers are not the classic LPIPS numbers
and are reported under their own name.

The wheel's `.pth` files are read with `torch.load(weights_only=True)`, PyPI's restricted
unpickler (tensors and containers only, never a Python callable), and only from the installed
package's folder, found without importing the package (its `__init__` needs torchvision).
Matches the package's own `LPIPS(net=..., variant="shift_tolerant")` (docs/RESULTS.md).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from filmstrip.checkpoint import CheckpointError
from filmstrip.errors import InputError

NETS = ("alex", "vgg")
MIN_SIDE = 16  # smaller images leave the deepest layers nothing to reflect-pad


class BlurPool(nn.Module):
    """Anti-aliased subsampling: a [1, 2, 1] x [1, 2, 1] / 16 filter per channel after
    reflection padding of 2 on every side, then stride 2."""

    def __init__(self):
        super().__init__()
        a = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("kernel", (a[:, None] * a[None, :] / 16)[None, None], persistent=False)

    def forward(self, x_bchw: torch.Tensor) -> torch.Tensor:
        c = x_bchw.shape[1]
        padded = F.pad(x_bchw, (2, 2, 2, 2), mode="reflect")
        return F.conv2d(padded, self.kernel.expand(c, 1, 3, 3).to(x_bchw.dtype), stride=2, groups=c)


def _conv(c_in: int, c_out: int, kernel: int, padding: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, padding=padding), nn.ReLU()]


def _alex_stages() -> list[nn.Sequential]:
    """AlexNet's five ReLU outputs; the first conv's stride 4 became stride 1 + blur pools."""
    return [
        nn.Sequential(nn.Conv2d(3, 64, 11, padding=2), BlurPool(), nn.ReLU()),
        nn.Sequential(nn.MaxPool2d(3, stride=1), BlurPool(), *_conv(64, 192, 5, 2)),
        nn.Sequential(nn.MaxPool2d(3, stride=1), BlurPool(), *_conv(192, 384, 3, 1)),
        nn.Sequential(*_conv(384, 256, 3, 1)),
        nn.Sequential(*_conv(256, 256, 3, 1)),
    ]


def _vgg_stages() -> list[nn.Sequential]:
    """VGG-16's relu1_2 ... relu5_3; each 2x2 max pool is stride 1, then a blur pool."""
    widths = [(3, 64, 2), (64, 128, 2), (128, 256, 3), (256, 512, 3), (512, 512, 3)]
    stages = []
    for i, (c_in, c_out, n) in enumerate(widths):
        layers = [nn.MaxPool2d(2, stride=1), BlurPool()] if i else []
        for j in range(n):
            layers += _conv(c_in if j == 0 else c_out, c_out, 3, 1)
        stages.append(nn.Sequential(*layers))
    return stages


class LPIPS(nn.Module):
    """`LPIPS(net)(a, b)`: the distance between images (B, 3, H, W) in [-1, 1], one per pair."""

    def __init__(self, net: str = "alex"):
        super().__init__()
        if net not in NETS:
            raise InputError(f"LPIPS net must be one of {', '.join(NETS)}, got {net!r}")
        self.net = net
        self.stages = nn.ModuleList(_alex_stages() if net == "alex" else _vgg_stages())
        widths = [[m for m in s if isinstance(m, nn.Conv2d)][-1].out_channels for s in self.stages]
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in widths)
        # ImageNet statistics as LPIPS writes them for inputs in [-1, 1]
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None])
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450])[None, :, None, None])

    def features(self, images_bchw: torch.Tensor) -> list[torch.Tensor]:
        """The five trunk activations, each unit-normalised over channels."""
        x = (images_bchw - self.shift) / self.scale
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    def forward(self, a_bchw: torch.Tensor, b_bchw: torch.Tensor) -> torch.Tensor:
        if a_bchw.shape != b_bchw.shape or a_bchw.ndim != 4 or a_bchw.shape[1] != 3:
            raise InputError(
                f"LPIPS compares two batches of (B, 3, H, W) images of one shape, got "
                f"{tuple(a_bchw.shape)} and {tuple(b_bchw.shape)}"
            )
        if min(a_bchw.shape[-2:]) < MIN_SIDE:
            raise InputError(
                f"LPIPS needs images of at least {MIN_SIDE} px a side, got {tuple(a_bchw.shape[-2:])}"
            )
        both = self.features(torch.cat([a_bchw, b_bchw]).float())
        return self.distance([f.chunk(2)[0] for f in both], [f.chunk(2)[1] for f in both])

    def distance(self, features_a: list[torch.Tensor], features_b: list[torch.Tensor]) -> torch.Tensor:
        """LPIPS from `features` computed beforehand: frames compared with many others (as the
        temporal consistencies do) go through the trunk once."""
        total = 0
        for head, fa, fb in zip(self.heads, features_a, features_b, strict=True):
            total = total + head((fa - fb).pow(2)).mean((1, 2, 3))
        return total


def source_weights(net: str = "alex") -> Path:
    spec = importlib.util.find_spec("stlpips_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(
            "LPIPS needs the weights in the PyPI package stlpips-pytorch: "
            "`pip install --no-deps stlpips-pytorch==0.0.2` (make test installs it)"
        )
    path = (
        Path(next(iter(spec.submodule_search_locations))) / "weights" / "vST0.0" / f"{net}_shift_tolerant.pth"
    )
    if not path.exists():
        raise CheckpointError(f"{path}: stlpips-pytorch is installed but this weight file is missing")
    return path


def _index(key: str) -> int:
    """The layer number in the package's Sequential names (net.slice2.5.weight -> 5)."""
    return int(re.match(r"net\.slice\d\.(\d+)\.", key).group(1))


def load_lpips(net: str = "alex", device: torch.device | str = "cpu", path: Path | None = None) -> LPIPS:
    """ST-LPIPS with the packaged weights, eval mode, gradients off."""
    model = LPIPS(net)
    path = path or source_weights(net)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated file or one that asks the unpickler for code
        raise CheckpointError(f"{path}: not a readable LPIPS weight file ({e})") from e
    # The package numbers its layers by position in one Sequential; ours are grouped by
    # stage. Convolutions appear in the same order in both, so they are matched in order.
    trunk = sorted((k for k in state if k.startswith("net.") and k.endswith(".weight")), key=_index)
    convs = [m for m in model.stages.modules() if isinstance(m, nn.Conv2d)]
    if len(trunk) != len(convs):
        raise CheckpointError(f"{path}: {len(trunk)} trunk convolutions, expected {len(convs)} for {net}")
    with torch.no_grad():
        for conv, key in zip(convs, trunk, strict=True):
            conv.weight.copy_(state[key])
            conv.bias.copy_(state[key.replace(".weight", ".bias")])
        for i, head in enumerate(model.heads):
            head.weight.copy_(state[f"lin{i}.model.1.weight"])
        model.shift.copy_(state["scaling_layer.shift"])
        model.scale.copy_(state["scaling_layer.scale"])
    return model.eval().requires_grad_(False).to(device)


def lpips_video(model: LPIPS, a_bcthw: torch.Tensor, b_bcthw: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """(B,) mean LPIPS over the frames of paired clips (B, 3, T, H, W)."""
    if a_bcthw.shape != b_bcthw.shape or a_bcthw.ndim != 5:
        raise InputError(
            f"need two (B, 3, T, H, W) clips of one shape, got {tuple(a_bcthw.shape)}, {tuple(b_bcthw.shape)}"
        )
    device = model.shift.device
    a = rearrange(a_bcthw, "b c t h w -> (b t) c h w")
    b = rearrange(b_bcthw, "b c t h w -> (b t) c h w")
    with torch.no_grad():
        d = torch.cat(
            [model(a[i : i + batch].to(device), b[i : i + batch].to(device)) for i in range(0, len(a), batch)]
        )
    return rearrange(d.cpu(), "(b t) -> b t", b=a_bcthw.shape[0]).mean(1)
