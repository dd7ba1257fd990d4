"""Run by tests/test_ddp.py under torchrun: train a tiny VAE and a tiny text-to-video DiT (whose
steps mix image and video clips, two forward passes per step) for a few steps on 2 CPU ranks
and write each rank's final weights digests."""

import hashlib
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from filmstrip.data import ShapesConfig, ShapesDataset, collate_clips
from filmstrip.data.latents import collate_latents
from filmstrip.diffusion.spec import ModelSpec
from filmstrip.models.dit import preset as dit_preset
from filmstrip.models.vae import preset
from filmstrip.train.t2v_task import T2VConfig, T2VTask
from filmstrip.train.trainer import TrainConfig, Trainer
from filmstrip.train.vae_task import VAELossConfig, VAETask


def digest(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for v in module.state_dict().values():
        h.update(v.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def main(out_dir: Path) -> None:
    torch.manual_seed(0)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    torch.set_num_threads(1)
    task = VAETask(preset("tiny"), VAELossConfig(image_every=2))
    before = digest(task.model)
    ds = ShapesDataset(ShapesConfig(num_frames=5, height=16, width=16, num_clips=32))
    cfg = TrainConfig(
        steps=3, batch_size=4, lr=1e-3, warmup=1, num_workers=0, ckpt_every=0, sample_every=0, log_every=1
    )
    trainer = Trainer(cfg, task, ds, out_dir / "run", collate=collate_clips)
    first_batch = trainer._loader().__next__()["video"]
    trainer.fit()
    # Text to video on random latents: batches of 8 split into 2 images + 6 clips.
    g = torch.Generator().manual_seed(1)
    latents = [
        {"latents": torch.randn(4, 3, 4, 4, generator=g), "text": torch.randn(1 + i % 3, 384, generator=g)}
        | {"caption": "", "truth": {}}
        for i in range(16)
    ]
    dit_task = T2VTask(
        dit_preset("tiny", in_channels=4), ModelSpec(), T2VConfig(image_fraction=0.25), torch.zeros(1, 384)
    )
    dit_before = digest(dit_task.model)
    Trainer(
        cfg.__class__(**{**vars(cfg), "batch_size": 8}), dit_task, latents, out_dir / "dit", collate_latents
    ).fit()
    # An adversarial VAE with two micro-batches per step: the discriminator (an auxiliary
    # network of the task) must stay in sync across ranks and step once per optimiser step.
    torch.manual_seed(0)
    gan_task = VAETask(preset("tiny"), VAELossConfig(gan=0.1, gan_start=0, image_every=2))
    gan_cfg = cfg.__class__(**{**vars(cfg), "accumulate": 2})
    gan_trainer = Trainer(gan_cfg, gan_task, ds, out_dir / "gan", collate=collate_clips)
    gan_trainer.fit()
    # A latent cache built by both ranks: each encodes every other missing shard, and both
    # return only when the whole cache is there.
    import filmstrip.data.latents as latents_module
    from filmstrip.text.encoder import TextEncoder

    encoded = []
    encode = latents_module._encode_clips
    latents_module._encode_clips = lambda *a, **k: encoded.append(1) or encode(*a, **k)
    torch.manual_seed(0)
    root = latents_module.build_latent_cache(
        ds, task.model.eval(), TextEncoder(), out_dir / "cache", num_clips=10, shard_size=2
    )
    cache = latents_module.LatentDataset(root)
    rank = dist.get_rank()
    record = {
        "shards_encoded": len(encoded),
        "cache_clips": len(cache),
        "disc": digest(gan_task.disc),
        "gan_model": digest(gan_task.model),
        "disc_steps": sorted(
            {int(s["step"]) for s in gan_trainer.aux_opt["disc"].state_dict()["state"].values()}
        ),
        "dit_before": dit_before,
        "dit_after": digest(dit_task.model),
        "rank": rank,
        "world": dist.get_world_size(),
        "before": before,
        "after": digest(task.model),
        "ema": digest(trainer.ema.model),
        "batch": float(first_batch.sum()),
    }
    (out_dir / f"rank{rank}.json").write_text(json.dumps(record))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
