"""Refuse work that cannot fit in memory before starting it, with the estimate and the limit,
instead of dying in the allocator minutes later (or asking the OS for 68 GiB)."""

from __future__ import annotations

import os

from filmstrip.errors import InputError

GIB = 1024**3


def available_bytes(device=None) -> int:
    """Memory the process can still get: a CUDA device's free memory for a CUDA `device`
    (a torch.device), else the host's: MemAvailable on Linux, else the physical total."""
    if device is not None and device.type == "cuda":
        import torch

        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: do not refuse


def check_fits(needed: float, what: str, hint: str, device=None) -> None:
    """InputError when `needed` bytes exceed what is available (on `device`: see available_bytes)."""
    have = available_bytes(device)
    if needed > have:
        where = f"memory on {device}" if device is not None and device.type == "cuda" else "memory"
        raise InputError(
            f"{what} needs about {needed / GIB:,.1f} GiB of {where}, but {have / GIB:,.1f} GiB is available; {hint}"
        )
