"""Latent cache: encode a dataset once with the VAE (and the text encoder), train from disk.

A text-to-video model never looks at pixels during training, so encoding every clip again
at every step would waste most of the compute. `build_latent_cache` runs the frozen VAE and
text encoder over `num_clips` clips and writes one safetensors shard per `shard_size` clips:

    cache/
      meta.json                 what was encoded (dataset, sizes, VAE config, latent scale)
      shard_00000.safetensors   latents (N, C, T', H', W') fp16, text states (N, L, 384) fp16,
                                text mask (N, L), per-frame motion (N, T) float32 in frame
                                short sides per second (data/motion.py: the dataset's own,
                                such as `shapes`' exact speeds, else measured by optical
                                flow), plus captions and truths in the metadata;
                                for clips with focus masks (data/folder.py), focus
                                (N, T', H', W') fp16, each latent pixel's weight
                                (`latent_focus`);
                                optionally some frames encoded alone, frames (N, K, C, H', W')
                                fp16 at frame_times (K,) in latent frames, for keyframes;
                                clips of several sizes (a folder's aspect-ratio buckets) are
                                stored one tensor each, `latents.J`

`meta.json` also records each clip's batching group (its bucket) when the dataset has them,
so training draws batches of clips that stack (data/join.py).

`LatentDataset` reads it back as {"latents", "text", "text_mask", "caption", "truth", "motion"},
and for `shapes` clips "camera" (T, 3), the camera condition read from the truth, and
"focus" where the cache has it.
Latents are stored as the VAE produced them; `normalize` happens in the training task.
Writing is atomic per shard, so an interrupted build resumes at the first missing shard.

Images come free: by causality the first latent frame of a clip *is* the latent of its
first frame encoded alone, so `latents[:, :1]` is an image sample.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from einops import rearrange, reduce
from safetensors import safe_open
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from filmstrip.checkpoint import save_tensors_atomic, write_json_atomic
from filmstrip.data.camera import camera_features
from filmstrip.data.flow import frame_speeds
from filmstrip.data.join import item_groups
from filmstrip.data.motion import track_speeds
from filmstrip.errors import InputError
from filmstrip.io.layout import to_uint8_thwc


def vae_config_dict(saved: dict, config_cls: type) -> dict:
    """A cache's recorded VAE config, with any field that it predates read as the default of
    `config_cls` (the VAE's config class: data code does not import models)."""
    return {**json.loads(json.dumps(asdict(config_cls()))), **saved}


@torch.no_grad()
def build_latent_cache(
    dataset: Dataset,
    vae,
    text_encoder,
    out_dir: str | Path,
    num_clips: int,
    shard_size: int = 256,
    batch_size: int = 16,
    description: str = "",
    workers: int = 0,
    frame_stride: int = 0,
) -> Path:
    """Encode the first `num_clips` items of `dataset` into `out_dir` with `workers` loader
    processes rendering clips. With `frame_stride` k > 0, frames k, 2k, ... and the last are
    also encoded alone, what keyframe conditioning trains on. Returns out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    num_clips = min(num_clips, len(dataset))
    meta = {
        "num_clips": num_clips,
        "shard_size": shard_size,
        "dataset": description,
        "vae": asdict(vae.cfg),
    }
    if frame_stride:
        meta["frame_stride"] = frame_stride
    groups = item_groups(dataset)
    if groups is not None:
        meta["groups"] = [repr(g) for g in groups[:num_clips]]
    _claim(out, json.loads(json.dumps(meta)), type(vae.cfg))  # tuples -> lists, as they read back
    device = next(vae.parameters()).device
    starts = range(0, num_clips, shard_size)
    # A shard that is missing or does not read back whole (a kill mid-copy, a full disk) is
    # encoded again. Under torchrun each rank encodes every world-th missing shard, then all
    # wait for the whole cache.
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    missing = [s for s, _ in enumerate(starts) if not _readable(out / f"shard_{s:05d}.safetensors")]
    if world > 1:
        dist.barrier()  # every rank has read the same list before any writes a shard
    missing = missing[rank::world]
    # One loader batch per missing shard: `workers` processes render whole shards while the
    # VAE (on its own device, a GPU if it is there) encodes the one before.
    loader = DataLoader(
        dataset,
        batch_sampler=[range(starts[s], min(starts[s] + shard_size, num_clips)) for s in missing],
        num_workers=workers,
        collate_fn=_stack_shard,
    )
    bar = tqdm(loader, desc="caching latents", unit="shard", disable=rank > 0 or not missing)
    for s, shard in zip(missing, bar, strict=True):
        stored = _encode_clips(vae, shard["video"], batch_size, frame_stride, device)
        if shard["focus"] is not None:
            stride = (vae.cfg.temporal_factor, vae.cfg.spatial_factor)
            if torch.is_tensor(shard["focus"]):
                stored["focus"] = latent_focus(shard["focus"], *stride).half()
            else:
                for j, f in enumerate(shard["focus"]):
                    stored[f"focus.{j}"] = latent_focus(f[None], *stride)[0].half()
        if shard["motion"] is not None:
            stored["motion"] = shard["motion"]
        captions = shard["captions"]
        states, mask = text_encoder.encode(captions)
        text_encoder.forget()  # captions rarely repeat; keep memory flat over a long build
        save_tensors_atomic(
            out / f"shard_{s:05d}.safetensors",
            {
                **stored,
                "text": states.cpu().half(),
                "text_mask": mask.cpu(),
            },
            metadata={
                "captions": json.dumps(captions),
                "truths": json.dumps(shard["truths"]),
            },
        )
    if world > 1:
        dist.barrier()
    return out


def _claim(out: Path, meta: dict, vae_cfg_type: type) -> None:
    """Write the cache's meta.json, or refuse a folder that holds another cache."""
    meta_path = out / "meta.json"
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        old["vae"] = vae_config_dict(old.get("vae", {}), vae_cfg_type)
        changed = [k for k in meta if old.get(k) != meta[k]]
        if "num_clips" in changed and "groups" in changed:
            changed.remove("groups")  # a list per clip: of course it changed
        if changed:
            # Say what changed: a folder that gained videos since looks the same by its name.
            named = {"vae": "another VAE", "groups": "the clips' aspect-ratio buckets differ"}
            what = [named.get(k, f"{k} {old.get(k)} -> {meta[k]}") for k in changed]
            raise InputError(
                f"{out}: holds the latent cache of another set ({'; '.join(what)}); build a new one in "
                "another folder (--cache), or delete this one to rebuild it"
            )
    write_json_atomic(meta_path, meta)


def _encode_clips(
    vae, videos: torch.Tensor | list[torch.Tensor], batch_size: int, frame_stride: int, device
) -> dict[str, torch.Tensor]:
    """A shard's clips (one stacked tensor, or a list of clips of several sizes) as the
    tensors it stores: "latents" (or "latents.j" per clip), and with `frame_stride` the
    frames encoded alone and their times."""
    if not torch.is_tensor(videos):  # clips of several sizes: one tensor each
        stored = {
            f"latents.{j}": vae.encode(v[None].to(device))[0].float().cpu().half()
            for j, v in enumerate(videos)
        }
        if frame_stride:
            for j, v in enumerate(videos):
                frames, times = _frame_latents(vae, v[None], frame_stride, device)
                stored[f"frames.{j}"], stored[f"frame_times.{j}"] = frames[0], times
        return stored
    latents = [vae.encode(part.to(device)).float().cpu() for part in videos.split(batch_size)]
    stored = {"latents": torch.cat(latents).half()}
    if frame_stride:
        parts = [_frame_latents(vae, v, frame_stride, device) for v in videos.split(batch_size)]
        stored["frames"] = torch.cat([p[0] for p in parts])
        stored["frame_times"] = parts[0][1]
    return stored


def latent_focus(focus_b1thw: torch.Tensor, temporal: int, spatial: int) -> torch.Tensor:
    """(B, T', H', W') the weight of each latent pixel from a (B, 1, T, H, W) focus mask in
    [0, 1]: the most that any of the frames and pixels it encodes hold, so a latent pixel that
    the masked thing touches at all is weighed as part of it. A causal VAE's latent frame 0 is
    frame 0 alone and latent frame k frames (k - 1) * temporal + 1 .. k * temporal."""
    t, h, w = focus_b1thw.shape[2:]
    if (t - 1) % temporal or h % spatial or w % spatial:
        raise InputError(
            f"a focus mask of {t} frames of {w}x{h} does not map onto latents with strides "
            f"{temporal} (time, after the first frame) and {spatial} (space)"
        )
    first = focus_b1thw[:, :, :1]
    rest = reduce(focus_b1thw[:, :, 1:], "b c (t f) h w -> b c t h w", "max", f=temporal)
    frames = torch.cat([first, rest], dim=2)
    return reduce(frames.float(), "b c t (h p) (w q) -> b t h w", "max", p=spatial, q=spatial)


def keyframe_indices(frames: int, stride: int) -> list[int]:
    """The frames a cache encodes alone for keyframe training: every `stride`-th after the
    first (the first is the clip's own first latent frame already), and the last."""
    return sorted({*range(stride, frames, stride), frames - 1} - {0})


def _frame_latents(vae, video_bcthw: torch.Tensor, stride: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The `keyframe_indices` frames, each encoded alone as the VAE encodes a first frame:
    (B, K, C, H', W') fp16, and their time positions (K,) in latent frames."""
    picks = keyframe_indices(video_bcthw.shape[2], stride)
    alone = rearrange(video_bcthw[:, :, picks], "b c k h w -> (b k) c 1 h w")
    z = vae.encode(alone.to(device)).float().cpu()
    frames = rearrange(z, "(b k) c 1 h w -> b k c h w", k=len(picks)).half()
    return frames, torch.tensor(picks, dtype=torch.float32) / vae.cfg.temporal_factor


def _readable(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        with safe_open(str(path), "pt") as f:
            return "text" in f.keys()  # noqa: SIM118 (safe_open has no iterator)
    except Exception:  # safetensors raises its own error types for damaged files
        return False


def _stack_shard(items: list[dict]) -> dict:
    """A shard's clips as one tensor: a worker hands the loader one shared-memory block per
    shard instead of one per clip. Motion is measured here, in the loader's workers."""
    videos = [it["video"] for it in items]
    same = all(v.shape == videos[0].shape for v in videos)
    motions = [_clip_motion(it) for it in items]
    # Where any clip has a focus mask, a clip without one weighs all its pixels alike (zeros).
    focus = None
    if any("focus" in it for it in items):
        focus = [it.get("focus", torch.zeros_like(it["video"][:1])) for it in items]
        focus = torch.stack(focus) if same else focus
    return {
        "video": torch.stack(videos) if same else videos,
        "focus": focus,
        "captions": [it.get("caption", "") for it in items],
        "truths": [it.get("truth") for it in items],
        "motion": None if any(m is None for m in motions) else torch.from_numpy(np.stack(motions)).float(),
    }


def _clip_motion(item: dict) -> np.ndarray | None:
    """(T,) per-frame speed: the dataset's own (exact for `shapes`), else optical flow on the
    pixels at the clip's frame rate; None when the rate is unknown or the clip is one frame."""
    if "motion" in item:
        return np.asarray(item["motion"], np.float32)
    fps = item.get("fps") or (item.get("truth") or {}).get("fps")
    if not fps or item["video"].shape[1] < 2:
        return None
    return frame_speeds(to_uint8_thwc(item["video"]), fps).astype(np.float32)


def truth_camera(truth: dict | None) -> torch.Tensor | None:
    """(T, 3) the camera condition (data/camera.camera_features) of a `shapes` truth: its path,
    or a still camera for a truth without one; None for a clip with no truth."""
    truth = truth or {}
    if truth.get("camera"):
        path = np.array([[c["x"], c["y"], c["scale"]] for c in truth["camera"]])
    elif truth.get("objects") and "positions" in truth["objects"][0]:
        path = np.tile([0.0, 0.0, 1.0], (len(truth["objects"][0]["positions"]), 1))
    else:
        return None
    return torch.from_numpy(camera_features(path)).float()


def truth_motion(truth: dict | None, side: int) -> torch.Tensor | None:
    """(T,) per-frame speed from a `shapes` truth's pixel tracks (caches built before motion
    was stored), or None when the truth has no tracks."""
    objects = (truth or {}).get("objects") or []
    if not objects or "positions" not in objects[0] or len(objects[0]["positions"]) < 2:
        return None
    tracks = np.array([o["positions"] for o in objects])
    return torch.from_numpy(track_speeds(tracks, side, truth["fps"])).float()


class LatentDataset(Dataset):
    """Items of a latent cache. Text states are trimmed to their own length on access and
    re-padded per batch by `collate_latents`."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        meta_path = self.root / "meta.json"
        if not meta_path.exists():
            raise InputError(
                f"{self.root}: not a latent cache (no meta.json); `filmstrip train t2v` builds one on first use"
            )
        self.meta = json.loads(meta_path.read_text())
        self.shards = sorted(self.root.glob("shard_*.safetensors"))
        expected = -(-self.meta["num_clips"] // self.meta["shard_size"])
        if len(self.shards) != expected:
            raise InputError(
                f"{self.root}: {len(self.shards)} of {expected} shards; rerun the cache build to finish it"
            )
        damaged = [p.name for p in self.shards if not _readable(p)]
        if damaged:
            raise InputError(
                f"{self.root}: {damaged[0]} is damaged ({len(damaged)} of {expected} shards); "
                "rerun the cache build (the same training command) to encode it again"
            )
        self._loaded: dict[int, tuple[dict, list, list]] = {}

    def __len__(self) -> int:
        return self.meta["num_clips"]

    def item_groups(self) -> list[str] | None:
        """Clips that stack share a group (recorded when the cache was built; data/join.py)."""
        return self.meta.get("groups")

    def _shard(self, s: int):
        if s not in self._loaded:
            with safe_open(str(self.shards[s]), "pt") as f:
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
                meta = f.metadata()
            self._loaded[s] = (tensors, json.loads(meta["captions"]), json.loads(meta["truths"]))
        return self._loaded[s]

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(f"item {i} out of range for a cache of {len(self)} clips")
        s, j = divmod(i, self.meta["shard_size"])
        tensors, captions, truths = self._shard(s)
        n = int(tensors["text_mask"][j].sum())
        latents = tensors["latents"][j] if "latents" in tensors else tensors[f"latents.{j}"]
        item = {
            "latents": latents.float(),
            "text": tensors["text"][j, :n].float(),
            "caption": captions[j],
            "truth": truths[j],
        }
        if "focus" in tensors or f"focus.{j}" in tensors:
            item["focus"] = (tensors["focus"][j] if "focus" in tensors else tensors[f"focus.{j}"]).float()
        motion = tensors["motion"][j] if "motion" in tensors else truth_motion(truths[j], self._side(latents))
        if motion is not None:
            item["motion"] = motion
        camera = truth_camera(truths[j])
        if camera is not None:
            item["camera"] = camera
        if self.has_frame_latents:
            item["frames"] = (tensors["frames"][j] if "frames" in tensors else tensors[f"frames.{j}"]).float()
            item["frame_times"] = (
                tensors["frame_times"] if "frame_times" in tensors else tensors[f"frame_times.{j}"]
            )
        return item

    def _side(self, latents: torch.Tensor) -> int:
        """The clip's short side in pixels, from its latent's and the VAE's spatial factor."""
        return min(latents.shape[-2:]) * self.meta.get("vae", {}).get("spatial_factor", 8)

    @property
    def has_frame_latents(self) -> bool:
        return bool(self.meta.get("frame_stride"))


def collate_latents(batch: list[dict]) -> dict:
    """Stack latents; right-pad text states to the longest prompt with a boolean mask."""
    length = max(item["text"].shape[0] for item in batch)
    text = torch.zeros(len(batch), length, batch[0]["text"].shape[1])
    mask = torch.zeros(len(batch), length, dtype=torch.bool)
    for k, item in enumerate(batch):
        n = item["text"].shape[0]
        text[k, :n], mask[k, :n] = item["text"], True
    out = {
        "latents": torch.stack([item["latents"] for item in batch]),
        "text": text,
        "text_mask": mask,
        "caption": [item["caption"] for item in batch],
        "truth": [item["truth"] for item in batch],
    }
    if all("control" in item for item in batch):
        out["control"] = torch.stack([item["control"] for item in batch])  # (B, C, T, H, W)
    if all("focus" in item for item in batch):
        out["focus"] = torch.stack([item["focus"] for item in batch])  # (B, T, H, W)
    if all("motion" in item for item in batch):
        out["motion"] = torch.stack([item["motion"] for item in batch])  # (B, T)
    if all("camera" in item for item in batch):
        out["camera"] = torch.stack([item["camera"] for item in batch])  # (B, T, 3)
    if all("frames" in item for item in batch):
        out["frames"] = torch.stack([item["frames"] for item in batch])  # (B, K, C, H', W')
        out["frame_times"] = torch.stack([item["frame_times"] for item in batch])  # (B, K)
    return out
