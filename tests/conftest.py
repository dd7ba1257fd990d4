"""Shared test helpers: small synthetic videos written with PyAV directly (not through
filmstrip's writer), so reader tests do not depend on the code under test for their input."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from filmstrip.checkpoint import save_model
from filmstrip.diffusion.spec import ModelSpec
from filmstrip.models.conditioning import Conditioning
from filmstrip.models.dit import VideoDiT
from filmstrip.models.dit import preset as dit_preset
from filmstrip.models.vae import VideoVAE
from filmstrip.models.vae import preset as vae_preset
from filmstrip.text.encoder import TextEncoder
from filmstrip.train.t2v_task import T2VConfig, T2VTask


@pytest.fixture(autouse=True)
def _seed_everything():
    """Each test starts from the same global RNG state, so its result does not depend on which
    tests ran before it (an unseeded draw once made a tolerance check fail in CI)."""
    torch.manual_seed(0)


def smooth_video(num_frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """A natural-looking (T, H, W, 3) uint8 clip: a smooth random texture panning diagonally."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (height + 2 * num_frames, width + 3 * num_frames, 3), dtype=np.uint8)
    texture = cv2.normalize(cv2.GaussianBlur(noise, (0, 0), 6), None, 0, 255, cv2.NORM_MINMAX)
    return np.stack([texture[t : t + height, 3 * t : 3 * t + width] for t in range(num_frames)])


def grey_level(k: int) -> int:
    """The grey value that marks frame k (k < 60) in indexed clips: apart enough to survive H.264."""
    return 12 + 4 * k


def write_indexed_clip(path: Path, pts: list[int], time_base: Fraction, size: int = 32) -> Path:
    """Frame k is flat grey at grey_level(k), shown at time pts[k] * time_base (VFR if uneven)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=round(1 / float(time_base)) or 1, options={"crf": "10"})
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = time_base
        for k, p in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(
                np.full((size, size, 3), grey_level(k), np.uint8), format="rgb24"
            )
            frame.pts, frame.time_base = p, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def decoded_frame_ids(video_cthw) -> list[int]:
    """Recover which source frame each output frame is, from its grey level."""
    levels = video_cthw.float().mean(dim=(0, 2, 3)).numpy()
    return [round((v - 12) / 4) for v in levels]


@pytest.fixture
def cfr30(tmp_path) -> Path:
    """60 frames at exactly 30 fps (2 s)."""
    return write_indexed_clip(tmp_path / "cfr30.mp4", list(range(60)), Fraction(1, 30))


# ---- tiny models shared by the text-to-video and conditioning tests -------------------
@pytest.fixture(scope="session")
def text_encoder():
    return TextEncoder()


@pytest.fixture(scope="session")
def tiny_vae():
    torch.manual_seed(0)
    return VideoVAE(vae_preset("tiny", latent_channels=4)).eval()


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, tiny_vae, text_encoder):
    root = tmp_path_factory.mktemp("bundle")
    save_model(root / "vae", "vae", vars(tiny_vae.cfg) | {}, tiny_vae.state_dict())
    null, _ = text_encoder.encode([""])
    torch.manual_seed(0)
    task = T2VTask(dit_preset("tiny", in_channels=4), ModelSpec(vae="vae"), T2VConfig(), null[0])
    with torch.no_grad():
        for p in task.model.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # open the zero-initialised gates
    config, meta = task.export(task.model)
    save_model(root / "t2v", "dit", config, task.model.state_dict(), meta)
    # The DiT finds its VAE next to itself: "vae" relative to the bundle.
    (root / "t2v" / "vae").symlink_to(root / "vae")
    return root / "t2v"


@pytest.fixture(scope="session")
def tiny_causal_bundle(tiny_bundle, text_encoder):
    """A tiny causal text-to-video model beside tiny_bundle's, sharing its VAE."""
    null, _ = text_encoder.encode([""])
    torch.manual_seed(1)
    task = T2VTask(dit_preset("tiny", in_channels=4, causal=True), ModelSpec(vae="vae"), T2VConfig(), null[0])
    with torch.no_grad():
        for p in task.model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    config, meta = task.export(task.model)
    out = tiny_bundle.parent / "t2v_causal"
    save_model(out, "dit", config, task.model.state_dict(), meta)
    (out / "vae").symlink_to(tiny_bundle.parent / "vae")
    return out


def causal_model(seed=0, **overrides):
    """A tiny float64 causal DiT with its zero-initialised gates opened."""
    torch.manual_seed(seed)
    model = VideoDiT(
        dit_preset("tiny", **{"in_channels": 4, "causal": True, "context_dim": 32, **overrides})
    ).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # open the zero-initialised gates so every path carries signal
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.05)
    return model.eval()


def causal_inputs(b=2, frames=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(b, 4, frames, 4, 6, generator=g, dtype=torch.float64)
    t = torch.rand(b, frames, generator=g, dtype=torch.float64)
    mask = torch.ones(b, 5, dtype=torch.bool)
    mask[-1, 3:] = False
    cond = Conditioning(torch.randn(b, 5, 32, generator=g, dtype=torch.float64), mask)
    return z, t, cond
