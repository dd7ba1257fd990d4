"""Still images (PNG, JPEG, ...) in the project's layout: (3, H, W) float in [-1, 1]."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch

from filmstrip.io.errors import VideoReadError


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """An image file as (3, H, W) float32 in [-1, 1], RGB; alpha is dropped, grey is repeated."""
    p = Path(path)
    if not p.is_file():
        raise VideoReadError(f"{p}: no such image file")
    data = np.fromfile(p, dtype=np.uint8)  # cv2.imread cannot report why it failed
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise VideoReadError(f"{p}: not an image that can be decoded (PNG, JPEG, BMP, WebP, ...)")
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return torch.from_numpy(rgb).permute(2, 0, 1).float() / 127.5 - 1.0
