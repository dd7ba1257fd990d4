"""Training the video DiT as a text-to-video rectified flow, with the common trainer.

Per step (on cached latents, see data/latents.py):
1. Normalise latents to unit scale with the spec's shift and scale (the VAE's, measured).
2. Drop the text to the empty prompt with probability `text_dropout`, which teaches the
   unconditional prediction that classifier-free guidance needs.
3. Joint image-video batches: an `image_fraction` share of every batch trains as images, the
   first latent frame of their clips (by causality, exactly the latent of that frame alone).
4. One noise level per clip, logit-normal and shifted for the token count, broadcast to every
   frame; or, for a `frame_noise` share of the video clips, one level per latent frame
   (diffusion forcing). Under a shared level the prompt's direction of motion barely changes
   the loss: every frame is equally noisy, so the frames themselves reveal the motion. With
   a clean frame next to a noisy one, predicting the noisy frame means knowing where the
   object goes, and the motion words carry real weight.
5. Loss: MSE between predicted and true velocity, averaged per clip and then over the batch;
   logged per noise-level bin and for images and videos apart. Optionally (`motion`), plus
   the MSE of the frame-to-frame changes of the predicted clean latents.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from filmstrip.diffusion.flow import add_noise, loss_by_bin, per_frame_loss, sample_t, velocity_target
from filmstrip.diffusion.spec import ModelSpec
from filmstrip.io import write_video
from filmstrip.models.conditioning import Conditioning, pad_tokens
from filmstrip.models.dit import DiTConfig, VideoDiT
from filmstrip.models.vae import VideoVAE
from filmstrip.pipelines.generate import GenerateConfig, Pipeline, generate
from filmstrip.text.encoder import TextEncoder
from filmstrip.viz import video_grid


@dataclass(frozen=True)
class Preview:
    """What a text-to-video run draws every `sample_every` steps."""

    vae: VideoVAE
    text: TextEncoder
    prompts: list[str]
    generate: GenerateConfig
    fps: float = 8.0


@dataclass(frozen=True)
class T2VConfig:
    """How a text-to-video DiT is trained; what sampling needs is in its `ModelSpec`."""

    text_dropout: float = 0.1
    image_fraction: float = 0.125  # of each batch's clips, trained as single images
    # Weight of an extra loss on the frame-to-frame changes of the predicted clean latents
    # (x0 = x_t - t v): motion is a small share of the velocity loss, so it is learned last.
    motion: float = 0.0
    # Share of video clips trained with an independent noise level per latent frame.
    frame_noise: float = 0.0


class T2VTask:
    kind = "dit"

    def __init__(
        self,
        dit_cfg: DiTConfig,
        spec: ModelSpec,
        cfg: T2VConfig,
        null_text: torch.Tensor,
        preview: Preview | None = None,
        data_name: str = "",
    ):
        """spec: the flow settings, latent normalisation and VAE, exported with the model.
        null_text: (L0, 384) states of the empty prompt. preview: what the periodic sample
        grid draws (needs the VAE and the text encoder). data_name: what the model is trained
        on, recorded in the exported model."""
        self.dit_cfg, self.spec, self.cfg = dit_cfg, spec, cfg
        self.data_name = data_name
        self.model = VideoDiT(dit_cfg)
        self.null_text = null_text
        self.preview = preview

    def auxiliary(self) -> dict:
        return {}

    def loss(
        self, model: nn.Module, batch: dict, step: int, generator: torch.Generator, aux: dict | None = None
    ):
        cfg = self.cfg
        device = next(self.model.parameters()).device
        g = generator
        z = self.spec.normalize(batch["latents"].to(device))
        text, mask = batch["text"].to(device), batch["text_mask"].to(device)
        b = z.shape[0]
        # 2. Text dropout to the empty prompt.
        drop = torch.rand(b, generator=g, device=g.device) < cfg.text_dropout
        if drop.any():
            null = self.null_text.to(device)
            length = max(text.shape[1], null.shape[0])
            text, mask = pad_tokens(text, mask, length)
            null_states, null_mask = pad_tokens(
                null[None], torch.ones(1, null.shape[0], dtype=torch.bool, device=device), length
            )
            text = torch.where(drop[:, None, None], null_states, text)
            mask = torch.where(drop[:, None], null_mask, mask)
        # 3. The first `n_image` clips of the batch train as images, the rest as video. The two
        # groups differ in length, so they take one forward pass each; the loss averages over
        # all samples, so the step's gradient is that of one mixed batch.
        n_image = round(b * cfg.image_fraction) if z.shape[2] > 1 else 0
        groups = {"image": (z[:n_image, :, :1], slice(0, n_image)), "video": (z[n_image:], slice(n_image, b))}
        per_sample, t_frames, loss_frames, logs = [], [], [], {}
        for name, (zg, rows) in groups.items():
            n = zg.shape[0]
            if n == 0:
                continue
            # 4. Noise level per clip, shifted for the token count.
            shift = self.spec.shift(tuple(zg.shape[2:]), self.dit_cfg.patch)
            flow = self.spec.flow
            t = sample_t((n,), shift, flow, g, g.device).to(device)
            t_bt = t[:, None].expand(n, zg.shape[2])
            if cfg.frame_noise and zg.shape[2] > 1:
                per_frame = torch.rand(n, generator=g, device=g.device).to(device) < cfg.frame_noise
                t_frame = sample_t((n, zg.shape[2]), shift, flow, g, g.device).to(device)
                t_bt = torch.where(per_frame[:, None], t_frame, t_bt)
            noise = torch.randn(zg.shape, generator=g, device=g.device).to(device)
            v = model(add_noise(zg, noise, t_bt), t_bt, Conditioning(text[rows], mask[rows]))
            target = velocity_target(zg, noise)
            frame_loss = per_frame_loss(v, target)  # (n, T)
            clip_loss = frame_loss.mean(dim=1)
            if cfg.motion and zg.shape[2] > 1:
                # x0 error = -t (v error), t of each frame.
                x0_error = (v.float() - target.float()) * t_bt[:, None, :, None, None]
                motion = x0_error.diff(dim=2).square().mean(dim=(1, 2, 3, 4))
                clip_loss = clip_loss + cfg.motion * motion
                logs["motion"] = float(motion.detach().mean())
            per_sample.append(clip_loss)
            t_frames.append(t_bt.detach().flatten().cpu())
            loss_frames.append(frame_loss.detach().flatten().cpu())
            logs[f"loss_{name}"] = float(frame_loss.detach().mean())
        # 5. Every clip counts once, image or video.
        loss = torch.cat(per_sample).mean()
        logs = {"loss": loss.item(), **logs, **loss_by_bin(torch.cat(t_frames), torch.cat(loss_frames))}
        return loss, logs

    def sample(self, model: nn.Module, out_dir: Path, step: int) -> None:
        """A captioned grid of the preview prompts, drawn by the model being trained."""
        p = self.preview
        if p is None:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"step_{step:07d}.mp4"
        videos = generate(Pipeline(model, p.vae, p.text, self.spec), p.prompts, p.generate)
        write_video(path, video_grid(list(videos), p.prompts, columns=len(p.prompts)), fps=p.fps)
        path.with_suffix(".txt").write_text("\n".join(p.prompts) + "\n")  # the grid's prompts, in order

    def export(self, model: nn.Module) -> tuple[dict, dict]:
        return {"dit": asdict(self.dit_cfg), "spec": asdict(self.spec), "train": asdict(self.cfg)}, {
            "data": self.data_name
        }

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"null_text": self.null_text}

    def load_state_tensors(self, state: dict[str, torch.Tensor]) -> None:
        if "null_text" in state:
            self.null_text = state["null_text"]
