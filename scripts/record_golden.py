"""Record the bundled model's pinned videos (tests/data/t2v_golden.safetensors).

Run this only when the shipped weights change on purpose: tests/test_bundled_weights.py then
pins the new model's output, so that a later refactor of the pipeline, the guidance or the
DiT's conditioning cannot change what it draws unnoticed.

    .venv/bin/python scripts/record_golden.py
"""

from pathlib import Path

import torch
from safetensors.torch import save_file

from filmstrip.data import ShapesConfig, ShapesDataset
from filmstrip.io.layout import to_uint8_thwc
from filmstrip.pipelines.conditions import ImageCondition
from filmstrip.pipelines.generate import GenerateConfig, generate, load_pipeline

PROMPTS = ["a red circle moves to the right", "a blue square drifts up and a yellow triangle slides left"]


def golden_videos(pipe) -> dict[str, torch.Tensor]:
    """uint8 (B, T, H, W, 3) videos for the pinned requests: guided text to video, a pyramid
    schedule without guidance, and first + last frame with image guidance."""
    guided = generate(pipe, PROMPTS, GenerateConfig(seed=0, steps=20))
    pyramid = generate(pipe, PROMPTS[:1], GenerateConfig(seed=3, steps=6, lag=0.5, text_scale=1.0, frames=9))
    item = ShapesDataset(ShapesConfig(num_frames=17, height=64, width=64, num_clips=1, seed=77))[0]
    frames = [ImageCondition(item["video"][:, 0], 0), ImageCondition(item["video"][:, -1], -1)]
    keyed = generate(
        pipe, [item["caption"]], GenerateConfig(seed=5, steps=10, image_scale=1.5), conditions=frames
    )
    as_uint8 = lambda videos: torch.stack([torch.from_numpy(to_uint8_thwc(v)) for v in videos])  # noqa: E731
    return {
        "video": as_uint8(guided),
        "video_pyramid_noguide": as_uint8(pyramid),
        "video_keyframes": as_uint8(keyed),
    }


if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "tests" / "data" / "t2v_golden.safetensors"
    save_file({k: v.contiguous() for k, v in golden_videos(load_pipeline()).items()}, str(out))
    print(out)
