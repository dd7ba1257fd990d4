"""Run by tests/test_ddp.py under torchrun: train a tiny VAE for a few steps on 2 CPU ranks
and write each rank's final weights digest."""

import hashlib
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from filmstrip.data import ShapesConfig, ShapesDataset, collate_clips
from filmstrip.models.vae import preset
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
    rank = dist.get_rank()
    record = {
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
