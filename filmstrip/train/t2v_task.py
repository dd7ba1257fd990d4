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
5. Frame conditioning: shares of the video clips get their first latent frame or a prefix
   clean, at noise level 0, and a share get 1-2 keyframes appended (diffusion/frames.py).
   One model then serves text-to-video, image-to-video, keyframes and extension; the clips
   with nothing given keep it a text-to-video model (and are the null of image guidance).
   A causal model can also be given its own rollout as the prefix (`rollout`, Self-Forcing's
   idea with the flow loss): see `_own_rollout`.
   A model with a `motion` condition (DiTConfig.vectors) reads each clip's per-frame speed,
   averaged over each latent frame's pixel frames, as a share of `FULL_SPEED`; one with a
   `camera` condition reads the camera's path (data/camera.camera_features) the same way.
   Each is dropped for its share of the clips, so the model also runs without it.
6. Loss: MSE between predicted and true velocity over the frames not given, averaged per clip
   and then over the batch; logged per noise-level bin and per group (image, video, key).
   Optionally (`motion`), plus the MSE of the frame-to-frame changes of the predicted clean
   latents.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from einops import rearrange
from torch import nn

from filmstrip.atomic import write_text_atomic
from filmstrip.data.motion import FULL_SPEED
from filmstrip.diffusion.flow import add_noise, loss_by_bin, per_frame_loss, sample_t, velocity_target
from filmstrip.diffusion.forcing import RolloutConfig, commit, rollout
from filmstrip.diffusion.frames import latent_frame_mean, with_frames
from filmstrip.diffusion.spec import ModelSpec
from filmstrip.errors import InputError, TrainingError
from filmstrip.io import write_video
from filmstrip.models.conditioning import Conditioning, pad_tokens
from filmstrip.models.dit import DiTConfig, VideoDiT
from filmstrip.models.kv_cache import CacheConfig, KVCache
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
    # Frame conditioning (image to video, keyframes, extension; diffusion/frames.py). Shares
    # of the video clips given clean frames in place: the first latent frame, or a prefix of
    # 2 .. T' - 1 latent frames. Their noise level is 0 and they carry no loss.
    first_frame: float = 0.0
    prefix: float = 0.0
    # Share of the video clips given 1 or 2 appended keyframes (frames encoded alone; needs a
    # cache with frame latents), and of those, the share whose keyframe is the last frame.
    keyframes: float = 0.0
    last_frame: float = 0.5
    keyframe_stride: int = 4  # the cache encodes frames k, 2k, ... and the last alone
    # Training on its own rollouts (a causal model only): a share of the video clips whose
    # clean prefix is the model's own continuation of their first frame, made with its KV
    # cache in `rollout_steps` steps per frame (diffusion/forcing.py), while the frames after
    # it keep the true clip as their target. The model learns from the context inference will
    # give it, and to steer back from its own errors.
    rollout: float = 0.0
    rollout_steps: int = 4
    # Shares of the clips whose motion and camera conditions (if the model has them) are withheld.
    motion_dropout: float = 0.1
    camera_dropout: float = 0.1
    # Loss weight of the latent pixels a clip's focus mask covers, against 1 for the rest
    # (batches from a cache built with masks, data/folder.py): a LoRA's new concept is a small
    # part of each frame, and its share of the loss, and of the gradient, is as small.
    focus_weight: float = 1.0
    # What the focus is: "masks", the cache's own (clip.mask.mp4), or "objects", every object
    # of a `shapes` clip, drawn from its truth (data/structure.py).
    focus: str = "masks"
    # Train on each clip's first N latent frames only (0: all). A causal VAE's first N latent
    # frames are exactly the encoding of the clip's first 1 + 4 (N - 1) frames, so this is
    # training on shorter clips, cheaper per step, from the same cache.
    latent_frames: int = 0

    def __post_init__(self):
        shares = (
            "text_dropout",
            "image_fraction",
            "frame_noise",
            "first_frame",
            "prefix",
            "keyframes",
            "last_frame",
            "rollout",
            "motion_dropout",
            "camera_dropout",
        )
        for name in shares:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(f"task.{name} is a share in [0, 1], got {value}")
        if self.rollout_steps < 1:
            raise InputError(f"task.rollout_steps must be at least 1, got {self.rollout_steps}")
        if self.keyframe_stride < 1:
            raise InputError(f"task.keyframe_stride must be at least 1, got {self.keyframe_stride}")
        if not (self.focus_weight > 0 and math.isfinite(self.focus_weight)):
            raise InputError(f"task.focus_weight must be a positive number, got {self.focus_weight}")
        if self.focus not in ("masks", "objects"):
            raise InputError(f"task.focus is masks or objects, got {self.focus!r}")
        if self.latent_frames < 0:
            raise InputError(
                f"task.latent_frames is a count of latent frames (0: all), got {self.latent_frames}"
            )
        if self.latent_frames and self.keyframes:
            raise InputError(
                "task.latent_frames (shorter clips) and task.keyframes (frames past them) exclude each other"
            )
        if self.first_frame + self.prefix > 1.0:
            raise InputError(
                f"task.first_frame + task.prefix is at most 1, got {self.first_frame + self.prefix}"
            )


def leading_frames(batch: dict, latent_frames: int) -> dict:
    """A batch of clips cut to their first `latent_frames` latent frames: latents and focus
    per latent frame, motion, camera and structure maps per video frame (a causal VAE's frame
    0 alone, then groups of (T - 1) / (T' - 1))."""
    frames = batch["latents"].shape[2]
    if latent_frames >= frames:
        return batch
    out = dict(batch)
    out["latents"] = batch["latents"][:, :, :latent_frames]
    if "focus" in batch:
        out["focus"] = batch["focus"][:, :latent_frames]
    for key, axis in (("motion", 1), ("camera", 1), ("control", 2)):
        if key in batch:
            video_frames = batch[key].shape[axis]
            group = (video_frames - 1) // (frames - 1)
            out[key] = batch[key].narrow(axis, 0, 1 + group * (latent_frames - 1))
    return out


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
        data_shapes: list[list[int]] | None = None,
    ):
        """spec: the flow settings, latent normalisation and VAE, exported with the model.
        null_text: (L0, 384) states of the empty prompt. preview: what the periodic sample
        grid draws (needs the VAE and the text encoder). data_name and data_shapes (frames,
        height, width and clips of each clip shape, most clips first): what the model is
        trained on, recorded in the exported model."""
        self.dit_cfg, self.spec, self.cfg = dit_cfg, spec, cfg
        self.data_shapes = data_shapes or []
        # Where training draws its noise levels: the spec's, unless a subclass moves them
        # (a LoRA: lora_task.py); sampling always uses the spec's.
        self.noise_spec = spec
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
        if cfg.latent_frames:
            batch = leading_frames(batch, cfg.latent_frames)
        z = self.spec.normalize(batch["latents"].to(device))
        text, mask = self._drop_text(batch["text"].to(device), batch["text_mask"].to(device), g)
        # 3. The first `n_image` clips of the batch train as images, the next `n_key` as video
        # with appended keyframes, the rest as video. The groups differ in length, so they
        # take one forward pass each; the loss averages over all samples, so the step's
        # gradient is that of one mixed batch.
        b = z.shape[0]
        n_image = round(b * cfg.image_fraction) if z.shape[2] > 1 else 0
        n_key = round((b - n_image) * cfg.keyframes) if z.shape[2] > 1 else 0
        if n_key and "frames" not in batch:
            raise TrainingError(
                "keyframe training needs a latent cache with single-frame latents (task.keyframes > 0 builds one)"
            )
        groups = {
            "image": (z[:n_image, :, :1], slice(0, n_image)),
            "key": (z[n_image : n_image + n_key], slice(n_image, n_image + n_key)),
            "video": (z[n_image + n_key :], slice(n_image + n_key, b)),
        }
        per_sample, t_frames, loss_frames, logs = [], [], [], {}
        for name, (zg, rows) in groups.items():
            if zg.shape[0] == 0:
                continue
            clip_loss, t_bt, frame_loss, clean = self._group_loss(
                model, name, zg, rows, text, mask, batch, g, logs
            )
            per_sample.append(clip_loss)
            t_frames.append(t_bt.detach()[~clean].cpu())
            loss_frames.append(frame_loss.detach()[~clean].cpu())
            logs[f"loss_{name}"] = float(clip_loss.detach().mean())
        # 6. Every clip counts once, image or video.
        loss = torch.cat(per_sample).mean()
        logs = {"loss": loss.item(), **logs, **loss_by_bin(torch.cat(t_frames), torch.cat(loss_frames))}
        return loss, logs

    def _drop_text(
        self, text: torch.Tensor, mask: torch.Tensor, g: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """2. Each clip's text replaced by the empty prompt's with probability `text_dropout`."""
        drop = torch.rand(text.shape[0], generator=g, device=g.device) < self.cfg.text_dropout
        if not drop.any():
            return text, mask
        device = text.device
        null = self.null_text.to(device)
        length = max(text.shape[1], null.shape[0])
        text, mask = pad_tokens(text, mask, length)
        null_states, null_mask = pad_tokens(
            null[None], torch.ones(1, null.shape[0], dtype=torch.bool, device=device), length
        )
        return torch.where(drop[:, None, None], null_states, text), torch.where(
            drop[:, None], null_mask, mask
        )

    def _group_loss(
        self,
        model: nn.Module,
        name: str,
        zg: torch.Tensor,
        rows: slice,
        text: torch.Tensor,
        mask: torch.Tensor,
        batch: dict,
        g: torch.Generator,
        logs: dict,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One group's forward (image, key or video clips `zg`, the batch's `rows`): per clip
        loss (n,), noise levels (n, T), per-frame loss (n, T) and the clean frames (n, T)."""
        cfg, device, n = self.cfg, zg.device, zg.shape[0]
        # 4. Noise level per clip, shifted for the token count.
        shift = self.noise_spec.shift(tuple(zg.shape[2:]), self.dit_cfg.patch)
        flow = self.noise_spec.flow
        t = sample_t((n,), shift, flow, g, g.device).to(device)
        t_bt = t[:, None].expand(n, zg.shape[2])
        if cfg.frame_noise and zg.shape[2] > 1:
            per_frame = torch.rand(n, generator=g, device=g.device).to(device) < cfg.frame_noise
            t_frame = sample_t((n, zg.shape[2]), shift, flow, g, g.device).to(device)
            t_bt = torch.where(per_frame[:, None], t_frame, t_bt)
        # 5. Clean frames in place (first frame, prefix) at noise level 0, and keyframes.
        clean = self._clean_frames(n, zg.shape[2], g).to(device)
        if cfg.rollout and name == "video" and zg.shape[2] > 2:
            zg, clean = self._own_rollout(zg, clean, text[rows], mask[rows], g)
        t_bt = t_bt.masked_fill(clean, 0.0)
        cond = Conditioning(text[rows], mask[rows])
        if set(self.model.vector_embed) & {"motion", "camera"}:
            cond = self._with_vectors(cond, batch, rows, zg.shape[2], g)
        if "control" in batch:  # structure maps, for a ControlNet; an image reads frame 0's
            cond.control = batch["control"][rows, :, : 1 if name == "image" else None].to(device)
        if name == "key":
            cond = self._with_keyframes(cond, batch, rows, g)
        noise = torch.randn(zg.shape, generator=g, device=g.device).to(device)
        v = with_frames(model, add_noise(zg, noise, t_bt), t_bt, cond)
        target = velocity_target(zg, noise)
        frame_loss = per_frame_loss(v, target, self._focus(batch, rows, zg.shape[2], device))  # (n, T)
        free = (~clean).float()
        clip_loss = (frame_loss * free).sum(dim=1) / free.sum(dim=1)
        if cfg.motion and zg.shape[2] > 1:
            # x0 error = -t (v error), t of each frame.
            x0_error = (v.float() - target.float()) * t_bt[:, None, :, None, None]
            motion = x0_error.diff(dim=2).square().mean(dim=(1, 2, 3, 4))
            clip_loss = clip_loss + cfg.motion * motion
            logs["motion"] = float(motion.detach().mean())
        return clip_loss, t_bt, frame_loss, clean

    def _focus(self, batch: dict, rows: slice, frames: int, device) -> torch.Tensor | None:
        """(n, T, H, W) loss weights of the rows' latent pixels: `focus_weight` where their
        focus masks cover, 1 elsewhere; None (every pixel alike) for a batch without masks."""
        if self.cfg.focus_weight == 1.0 or "focus" not in batch:
            return None
        return 1.0 + (self.cfg.focus_weight - 1.0) * batch["focus"][rows, :frames].to(device)

    def _clean_frames(self, n: int, frames: int, g: torch.Generator) -> torch.Tensor:
        """(n, T) bool: the latent frames given clean in place, per the first-frame and prefix
        shares (a prefix of 2 .. T - 1 frames, so something is always left to generate)."""
        cfg = self.cfg
        u = torch.rand(n, generator=g, device=g.device)
        length = torch.zeros(n, dtype=torch.long, device=g.device)
        if frames > 1:
            length = torch.where(u < cfg.first_frame, 1, length)
            if frames > 2:
                prefix = torch.randint(2, frames, (n,), generator=g, device=g.device)
                in_prefix = (u >= cfg.first_frame) & (u < cfg.first_frame + cfg.prefix)
                length = torch.where(in_prefix, prefix, length)
        return torch.arange(frames, device=g.device)[None] < length[:, None]

    def _own_rollout(
        self, z: torch.Tensor, clean: torch.Tensor, text: torch.Tensor, mask: torch.Tensor, g: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """For a `rollout` share of the clips: latent frames 1 .. p - 1 replaced by the model's
        own continuation of frame 0 (one p per step, 2 <= p < T, so the rows batch), and
        marked clean. Returns the new latents and clean mask."""
        if not self.dit_cfg.causal:
            raise TrainingError("task.rollout trains a causal model on its own rollouts: set dit.causal")
        n, c, frames, h, w = z.shape
        picked = (torch.rand(n, generator=g, device=g.device) < self.cfg.rollout).nonzero().flatten()
        if len(picked) == 0:
            return z, clean
        p = int(torch.randint(2, frames, (1,), generator=g, device=g.device))
        rows = picked.to(z.device)
        cond = Conditioning(text[rows], mask[rows])
        cache = KVCache.for_model(self.model, CacheConfig(window=0, sink=0))
        run = RolloutConfig(self.cfg.rollout_steps, self.spec.shift((1, h, w), self.dit_cfg.patch))
        noises = [
            torch.randn((len(rows), c, 1, h, w), generator=g, device=g.device).to(z.device)
            for _ in range(p - 1)
        ]
        commit(self.model, cache, [cond], [], z[rows, :, :1])
        made = torch.cat(list(rollout(self.model, cache, lambda k: [cond], [], noises, run)), dim=2)
        z, clean = z.clone(), clean.clone()
        z[rows, :, 1:p] = made.to(z.dtype)
        clean[rows] = torch.arange(frames, device=clean.device) < p
        return z, clean

    def _with_vectors(
        self, cond: Conditioning, batch: dict, rows: slice, frames: int, g: torch.Generator
    ) -> Conditioning:
        """The model's motion and camera conditions from the batch, per latent frame: speeds
        as a share of `FULL_SPEED`, camera paths as `camera_features`; each withheld for its
        dropout share of the clips."""
        device = cond.context.device
        vectors, present = {}, {}
        for name in set(self.model.vector_embed) & {"motion", "camera"}:
            if name not in batch:
                raise TrainingError(
                    f"this model takes a {name} condition, but the latent cache gives no per-frame {name}; "
                    "build the cache again in a new folder (--cache)"
                )
            values = batch[name][rows].to(device).float()  # (n, T) speeds or (n, T, 3) camera
            if name == "motion":
                values = values[..., None] / FULL_SPEED
            vectors[name] = latent_frame_mean(values, frames)  # (n, T', dim)
            dropout = self.cfg.motion_dropout if name == "motion" else self.cfg.camera_dropout
            present[name] = (torch.rand(len(values), generator=g, device=g.device) >= dropout).to(device)
        return Conditioning(cond.context, cond.context_mask, vectors, present)

    def _with_keyframes(
        self, cond: Conditioning, batch: dict, rows: slice, g: torch.Generator
    ) -> Conditioning:
        """1 or 2 of the cache's single-frame latents as keyframes, the same ones for every row
        of the step: the last frame in a `last_frame` share of steps, any other frame else."""
        frames, times = batch["frames"][rows], batch["frame_times"][0]  # (n, K, C, H', W'), (K,)
        count = min(len(times), 1 + int(torch.randint(2, (1,), generator=g, device=g.device)))
        picks = torch.randperm(len(times), generator=g, device=g.device)[:count]
        if float(torch.rand(1, generator=g, device=g.device)) < self.cfg.last_frame:
            picks[-1] = len(times) - 1
        picks = picks.unique().cpu()  # sorted
        device = next(self.model.parameters()).device
        keys = self.spec.normalize(rearrange(frames[:, picks].to(device), "b k c h w -> b c k h w"))
        return Conditioning(
            cond.context,
            cond.context_mask,
            cond.vectors,
            cond.present,
            keyframes=keys,
            key_times=times[picks],
            control=cond.control,
        )

    def sample(self, model: nn.Module, out_dir: Path, step: int) -> None:
        """A captioned grid of the preview prompts, drawn by the model being trained."""
        p = self.preview
        if p is None:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"step_{step:07d}.mp4"
        videos = generate(Pipeline(model, p.vae, p.text, self.spec), p.prompts, p.generate)
        write_video(path, video_grid(list(videos), p.prompts, columns=len(p.prompts)), fps=p.fps)
        write_text_atomic(
            path.with_suffix(".txt"), "\n".join(p.prompts) + "\n"
        )  # the grid's prompts, in order

    def export(self, model: nn.Module) -> tuple[dict, dict]:
        meta = {"data": self.data_name, **({"shapes": self.data_shapes} if self.data_shapes else {})}
        return {"dit": asdict(self.dit_cfg), "spec": asdict(self.spec), "train": asdict(self.cfg)}, meta

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"null_text": self.null_text}

    def load_state_tensors(self, state: dict[str, torch.Tensor]) -> None:
        if "null_text" in state:
            self.null_text = state["null_text"]
