"""Which device runs the work: a name a person types, checked before any model loads.

"auto" takes a CUDA GPU when one is visible and the CPU otherwise, as training does; a named
device ("cpu", "cuda", "cuda:1", "mps") is honoured where this machine has it and refused in
one sentence where it does not, rather than by a CUDA error deep inside the first forward.
Seeds give the same noise on every device (it is drawn on the CPU, `pipelines/denoise.py`),
so a video made on a GPU differs from the CPU's only by float rounding.
"""

from __future__ import annotations

import torch

from filmstrip.errors import InputError

DEVICE_HELP = "auto (a CUDA GPU when one is visible, else the CPU), cpu, cuda, cuda:N or mps"


def pick_device(name: str | torch.device = "auto") -> torch.device:
    """The torch.device `name` means here, checked to exist on this machine."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"device {name!r} is not one torch knows: give {DEVICE_HELP}") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(
                f"device {name!r}: this machine has no CUDA GPU that torch {torch.__version__} can use "
                "(use --device cpu, or install a CUDA build of torch on a machine with a GPU)"
            )
        if device.index is not None and device.index >= count:
            raise InputError(
                f"device {name!r}: this machine has {count} CUDA GPU(s), cuda:0..cuda:{count - 1}"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device {name!r}: Apple's Metal (MPS) is not available on this machine")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"device {name!r}: give {DEVICE_HELP}")
    return device
