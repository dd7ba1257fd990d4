"""Which device the work runs on: `--device` checked before any model loads, and every
pipeline keeping its tensors on the pipeline's device.

No GPU is lent to CI, so the second part runs the pipelines on PyTorch's `meta` device: meta
tensors carry shapes and devices but no values, and an op that mixes one with a CPU tensor
(other than a 0-d scalar) fails exactly as it does with a CUDA tensor. A tensor left on the
CPU anywhere in a pipeline fails the test here as it would fail a GPU user's run. The tests
marked `gpu` run the same pipelines on a real CUDA device and compare with the CPU.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace

import pytest
import torch
from click.testing import CliRunner

from filmstrip.checkpoint import resolve
from filmstrip.cli import main
from filmstrip.data.camera import preset_path
from filmstrip.device import pick_device
from filmstrip.errors import InputError
from filmstrip.models.controlnet import ControlledDiT, load_controlnet
from filmstrip.models.dit import VideoDiT
from filmstrip.models.lora import apply_loras, parse_lora_arg
from filmstrip.models.vae import load_vae
from filmstrip.pipelines import denoise, stream
from filmstrip.pipelines.conditions import ImageCondition
from filmstrip.pipelines.edit import edit, video_to_video
from filmstrip.pipelines.extend import extend
from filmstrip.pipelines.generate import GenerateConfig, generate, load_pipeline
from filmstrip.pipelines.longform import HierarchicalConfig, SlidingConfig, hierarchical, sliding_windows
from filmstrip.pipelines.stream import StreamConfig
from filmstrip.pipelines.timeline import parse_timeline

META = torch.device("meta")
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CFG = GenerateConfig(frames=9, steps=2)
PROMPT = ["a red circle moves to the right"]


# ---- choosing a device ---------------------------------------------------------------------
def test_auto_takes_a_gpu_when_one_is_visible_else_the_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device("auto").type == expected
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device(META) is META  # a torch.device from Python passes through


@pytest.mark.parametrize(
    "name, words",
    [
        ("gpu", "not one torch knows"),
        ("xpu", "give auto"),
        ("cuda:99", "cuda"),
        ("banana:3", "not one torch knows"),
    ],
)
def test_a_device_this_machine_lacks_is_refused_in_one_sentence(name, words):
    if name == "cuda:99" and not torch.cuda.is_available():
        words = "no CUDA GPU"
    with pytest.raises(InputError, match=words):
        pick_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_on_a_machine_without_one_is_refused_before_any_model_loads(tmp_path, monkeypatch):
    loaded = []
    monkeypatch.setattr(denoise, "load_model", lambda *a: loaded.append(a))
    result = CliRunner().invoke(
        main, ["generate", "a red circle", "-o", str(tmp_path / "a.mp4"), "--device", "cuda"]
    )
    assert result.exit_code != 0 and "no CUDA GPU" in result.output, result.output
    assert not loaded and not (tmp_path / "a.mp4").exists()
    result = CliRunner().invoke(main, ["eval", "adherence", "--prompts", "1", "--device", "cuda:1"])
    assert result.exit_code != 0 and "no CUDA GPU" in result.output, result.output
    for args in (["play", "--frames", "1"], ["vae", "reconstruct", "x.mp4", "-o", str(tmp_path / "r.mp4")]):
        result = CliRunner().invoke(main, [*args, "--device", "cuda"])
        assert result.exit_code != 0 and "no CUDA GPU" in result.output, result.output


def test_generate_on_the_cpu_by_name_equals_the_default(tmp_path):
    runner = CliRunner()
    for name, extra in (("default", []), ("cpu", ["--device", "cpu"])):
        args = ["generate", PROMPT[0], "-o", str(tmp_path / f"{name}.mp4"), "--steps", "2", "--frames", "5"]
        assert runner.invoke(main, args + extra).exit_code == 0
    assert (tmp_path / "default.mp4").read_bytes() == (tmp_path / "cpu.mp4").read_bytes()


def test_work_on_a_gpu_is_checked_against_the_gpus_free_memory(monkeypatch):
    from filmstrip.io.memory import GIB, check_fits

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (1 * GIB, 80 * GIB))
    check_fits(2 * GIB, "host work", "")  # the host's memory: this machine has more than 2 GiB
    with pytest.raises(InputError, match=r"about 2.0 GiB of memory on cuda:0, but 1.0 GiB is available"):
        check_fits(2 * GIB, "work", "", torch.device("cuda:0"))


# ---- every pipeline on another device ------------------------------------------------------
@pytest.fixture
def on_meta(monkeypatch):
    """Run pipelines on the meta device. Stepped over, as they need values: checks such as
    `if not torch.isfinite(x).all()` (a meta tensor's truth is taken as True: they pass), the
    copy of finished pixels to the CPU (`.cpu()` of a meta tensor is itself: there is nothing
    to copy, so pipelines return their pixels still on meta), and autocast, which has no meta
    type (the text encoder turns it off around its forward)."""
    truth, copy = torch.Tensor.__bool__, torch.Tensor.cpu
    monkeypatch.setattr(torch.Tensor, "__bool__", lambda t: True if t.is_meta else truth(t))
    monkeypatch.setattr(torch.Tensor, "cpu", lambda t: t if t.is_meta else copy(t))
    real = torch.autocast
    monkeypatch.setattr(
        torch,
        "autocast",
        lambda device_type, *a, **k: (
            contextlib.nullcontext() if device_type == "meta" else real(device_type, *a, **k)
        ),
    )


@pytest.fixture(scope="module")
def meta_pipes():
    return {name: load_pipeline(name, device=META) for name in ("t2v", "t2v_causal")}


def test_text_to_video_and_frame_conditions_stay_on_the_device(on_meta, meta_pipes):
    pipe = meta_pipes["t2v"]
    assert pipe.device == META and next(pipe.vae.parameters()).device == META
    image = torch.zeros(3, 64, 64)  # given on the CPU, as a user gives it
    assert generate(pipe, PROMPT, CFG).shape == (1, 3, 9, 64, 64)
    # Frame 0 only: a later keyframe enters as an extra latent whose time the guidance reads as a
    # value (to batch the levels that share it), which a meta tensor has not; the gpu test runs it.
    assert generate(pipe, PROMPT * 2, CFG, conditions=[ImageCondition(image, 0)]).device == META
    assert generate(pipe, PROMPT, replace(CFG, lag=0.5), "a blue square").device == META


def test_extension_and_video_to_video_stay_on_the_device(on_meta, meta_pipes):
    clip = torch.zeros(1, 3, 9, 64, 64)
    assert extend(meta_pipes["t2v_causal"], clip, PROMPT, CFG, context=5).shape == (1, 3, 13, 64, 64)
    # Plain SDEdit only: editing with the clip's attention keys what it records by each step's
    # noise level, a value (as is the stream's check that the prompt is unchanged); the gpu
    # test runs those.
    assert video_to_video(meta_pipes["t2v"], clip, ["a blue circle moves right"], CFG, 0.5).device == META


@pytest.mark.filterwarnings("ignore:.*to a meta parameter")  # the LoRA's values: meta holds none
def test_controlnet_lora_motion_and_camera_stay_on_the_device(on_meta, meta_pipes):
    pipe = meta_pipes["t2v"]
    net = load_controlnet(resolve(None, "controlnet_masks"), pipe.dit).to(META).eval()
    maps = torch.zeros(1, 1, 9, 64, 64)
    controlled = replace(pipe, dit=ControlledDiT(pipe.dit, net, 1.0))
    assert generate(controlled, PROMPT, CFG, control=maps).device == META
    with_lora = replace(pipe, dit=VideoDiT(pipe.dit.cfg).to(META).eval())
    apply_loras(with_lora.dit, [parse_lora_arg("lora_star:0.8")], merge=True)
    assert generate(with_lora, PROMPT, CFG).device == META
    vectors = (("motion", 1), ("camera", 3))
    steered = replace(pipe, dit=VideoDiT(replace(pipe.dit.cfg, vectors=vectors)).to(META).eval())
    video = generate(steered, PROMPT, replace(CFG, motion=0.5), camera=preset_path("pan-left", 9, 8.0))
    assert video.device == META


def test_long_videos_stay_on_the_device(on_meta, meta_pipes):
    timeline = parse_timeline(["0s: a red circle moves right", "1s: a blue square moves up"])
    pipe = meta_pipes["t2v"]
    assert sliding_windows(pipe, timeline, SlidingConfig(seconds=2, steps=2)).device == META


@pytest.mark.parametrize("name", ["vae3d", "vae2d", "vae_natural"])
def test_the_autoencoders_stay_on_the_device(on_meta, name):
    vae = load_vae(name, META)
    x = torch.zeros(1, 3, 17, 64, 96, device=META)  # (`vae` commands move the clip there)
    z = vae.encode_chunked(x)
    assert z.device == META and vae.decode_chunked(z, num_frames=17).device == META
    assert vae.decode_tiled(z, 4, 1, num_frames=17).shape == x.shape


def test_a_world_rollout_kept_on_the_cpu_drives_heads_on_the_device(on_meta):
    """Evaluators keep their rollouts on the CPU (the frames are scored there); the model and
    its heads may be on a GPU. (The flow sampler's own generator cannot live on meta; the gpu
    test plays the environment, whose rollout lives on the device.)"""
    from filmstrip.world.model import load_world_model
    from filmstrip.world.rollout import Rollout, copy_last

    model = load_world_model("world_pong", META)
    frames, actions = torch.zeros(2, 4, 3, 64, 64), torch.zeros(2, 4, dtype=torch.long)
    frame, reward, end = Rollout(copy_last, frames, actions, heads=model.heads).step(torch.tensor([1, 2]))
    assert frame.device.type == "cpu" and reward.shape == end.shape == (2,)


# ---- on a real GPU: what meta cannot run (values decide), and the numbers ------------------
@pytest.mark.gpu
@CUDA
def test_a_gpu_makes_the_cpus_video_to_float_rounding():
    made = {d: generate(load_pipeline(device=d), PROMPT, GenerateConfig(steps=8)) for d in ("cpu", "cuda")}
    assert made["cuda"].device.type == "cpu"  # pixels come back to be written and scored
    assert (made["cuda"] - made["cpu"]).abs().mean() < 0.02


@pytest.mark.gpu
@CUDA
def test_long_videos_and_shared_attention_edits_on_a_gpu():
    pipe, causal = load_pipeline(device="cuda"), load_pipeline("t2v_causal", device="cuda")
    timeline = parse_timeline(["0s: a red circle moves right", "1s: a blue square moves up"])
    made = [
        torch.cat(list(stream.stream(causal, timeline, StreamConfig(seconds=2, steps=2))), dim=1),
        hierarchical(pipe, timeline, HierarchicalConfig(seconds=2, steps=2)),
        edit(
            pipe,
            torch.zeros(1, 3, 9, 64, 64),
            PROMPT,
            ["a blue circle moves to the right"],
            CFG,
            strength=0.5,
        ),
    ]
    assert [v.shape[-3] for v in made] == [17, 17, 9] and all(v.device.type == "cpu" for v in made)


@pytest.mark.gpu
@CUDA
def test_every_generate_mode_runs_end_to_end_on_a_gpu(tmp_path):
    runner = CliRunner()
    clip = tmp_path / "clip.mp4"
    base = ["--device", "cuda", "--steps", "2"]
    modes = {
        "t2v": [],
        "image": ["--keyframe", f"0:{tmp_path / 'f.png'}", "--keyframe", f"-1:{tmp_path / 'f.png'}"],
        "extend": ["--extend", str(clip)],
        "video": ["--video", str(clip), "--source-prompt", "a red circle moves to the right"],
        "edit": ["--edit", str(clip), "--source-prompt", "a red circle moves to the right"],
        "stream": ["--seconds", "3", "--stream"],
        "lora": ["--lora", "lora_star:0.8"],
    }
    assert runner.invoke(main, ["generate", PROMPT[0], "-o", str(clip), *base]).exit_code == 0
    import cv2

    from filmstrip.io import read_video

    cv2.imwrite(str(tmp_path / "f.png"), read_video(clip, num_frames=1)[0][:, 0].permute(1, 2, 0).numpy())
    for name, extra in modes.items():
        result = runner.invoke(
            main, ["generate", "a blue circle moves up", "-o", str(tmp_path / f"{name}.mp4"), *base, *extra]
        )
        assert result.exit_code == 0, (name, result.output)
    result = runner.invoke(main, ["eval", "adherence", "--prompts", "4", "--steps", "4", "--device", "cuda"])
    assert result.exit_code == 0, result.output
    psnr = {}
    for device in ("cpu", "cuda"):
        args = ["vae", "reconstruct", str(clip), "-o", str(tmp_path / f"r_{device}.mp4"), "--device", device]
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
        psnr[device] = float(result.output.split("PSNR ")[1].split()[0])
        result = runner.invoke(
            main, ["vae", "encode", str(clip), "-o", str(tmp_path / "z.safetensors"), "--device", device]
        )
        assert result.exit_code == 0, result.output
    assert psnr["cuda"] == pytest.approx(psnr["cpu"], abs=0.05)


@pytest.mark.gpu
@CUDA
def test_the_world_model_plays_and_is_scored_on_a_gpu(tmp_path, monkeypatch):
    from filmstrip.world.env import WorldModelEnv
    from filmstrip.world.record import RecordConfig, record

    env = WorldModelEnv("world_pong", device="cuda")
    obs, _ = env.reset(seed=0)
    for action in (1, 2, 3):
        obs, reward, *_ = env.step(action)
    assert obs.shape == (64, 64, 3) and obs.std() > 0 and isinstance(reward, float)
    record(
        RecordConfig(game="pong", steps=300, seed=7, max_episode_steps=300), tmp_path / "eps", progress=False
    )
    result = CliRunner().invoke(
        main, ["world", "eval", str(tmp_path / "eps"), "--starts", "4", "--device", "cuda"]
    )
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    result = CliRunner().invoke(main, ["play", "--frames", "20", "--fps", "0", "--device", "cuda"])
    assert result.exit_code == 0, result.output
