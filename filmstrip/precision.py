"""Which number format a device runs fast, and the autocast context that uses it.

bf16 autocast pays off on GPUs and on CPUs whose oneDNN has bf16 kernels (AVX512-BF16, AMX):
there matmuls run 1.2-6x faster than float32. On an AVX2-only CPU bf16 is emulated: the
small DiT at batch 32 trained at 0.03 steps/s under bf16 against 0.64 in float32, and a
sampling forward ran 6-7x slower (docs/RESULTS.md, sessions 12 and 14). So "bf16" is a
request that the device may decline, and "auto" asks for it only where it is fast.
"""

from __future__ import annotations

import contextlib

import torch

from filmstrip.errors import InputError

PRECISIONS = ("auto", "fp32", "bf16")


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bf16 autocast is faster than float32 on `device`."""
    if device.type != "cpu":
        return True
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # an older or unusual build: keep what was asked
        return True


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether `precision` ("auto", "fp32" or "bf16") means bf16 autocast on `device`.
    "bf16" is honoured even where it is slow (to measure it); "auto" takes it where it is fast."""
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    return precision == "bf16" or (precision == "auto" and bf16_is_fast(device))


def autocast(bf16: bool, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on `device`, or nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
