"""One training loop for every model in filmstrip.

The loop knows nothing about VAEs or diffusion. A *task* supplies the model, the loss of a
batch and what to export; the loop supplies the rest:

* AdamW with linear warm-up then cosine decay, gradient clipping, gradient accumulation;
* bf16 autocast (on CPUs with AMX bf16 matmuls run several times faster than fp32);
* an EMA of the weights, which is what gets exported and sampled;
* a progress bar with loss and it/s, and `log.jsonl` in the run folder;
* atomic checkpoints every `ckpt_every` steps and on Ctrl-C or SIGTERM, and **exact resume**: the data
  order and every random draw of step s are pure functions of (seed, s, rank), so a run
  resumed from step s repeats what the uninterrupted run would have done;
* data parallelism through `torchrun` (gloo on CPU, NCCL on GPU): each rank sees its own
  slice of every batch, gradients are averaged by DDP.

Run folder layout::

    run/
      log.jsonl                  one JSON line per logged step
      checkpoints/step_000500/   model, ema, optimizer, task state (safetensors) + state.json
      model/                     the EMA weights as a loadable model directory
      samples/                   whatever the task draws every `sample_every` steps
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import math
import os
import shutil
import signal
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import torch
import torch.distributed as dist
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from filmstrip.atomic import atomic_directory, write_text_atomic
from filmstrip.checkpoint import (
    CheckpointError,
    save_model,
    save_tensors_atomic,
    weights_mismatch,
    write_json_atomic,
)
from filmstrip.config import check_types
from filmstrip.data.join import item_groups, varies_by_epoch
from filmstrip.errors import FilmstripWarning, InputError, TrainingError
from filmstrip.precision import bf16_is_fast
from filmstrip.train.ema import EMA


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    batch_size: int = 8  # global, across ranks and accumulation
    accumulate: int = 1
    lr: float = 3e-4
    min_lr_ratio: float = 0.1
    warmup: int = 100
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    bf16: bool = True
    # torch.compile the model: the first step pays for compilation (about 1.5 minutes for the
    # small DiT on a 2-core CPU), every later one runs 1.2-1.3x faster there (RESULTS.md,
    # session 14). For runs of more than a few hundred steps.
    compile: bool = False
    seed: int = 0
    log_every: int = 10
    sample_every: int = 500
    ckpt_every: int = 500
    keep_checkpoints: int = 2
    num_workers: int = 1
    # End the run here, before its schedule does (None: at `steps`): how a stage that was
    # stopped early is reproduced.
    stop_at: int | None = None

    def __post_init__(self):
        check_types(self, "train")
        checks = {
            "steps": self.steps >= 0,
            "batch_size": self.batch_size >= 1,
            "accumulate": self.accumulate >= 1,
            "lr": math.isfinite(self.lr) and self.lr >= 0,
            "warmup": self.warmup >= 0,
            "ema_decay": 0 <= self.ema_decay < 1,
            "grad_clip": self.grad_clip > 0,
            "seed": 0 <= self.seed < 2**32,  # seeds are mixed with step numbers in int64
            "num_workers": self.num_workers >= 0,
            "ckpt_every": self.ckpt_every >= 0,
            "sample_every": self.sample_every >= 0,
            "log_every": self.log_every >= 1,
            "keep_checkpoints": self.keep_checkpoints >= 1,
            "stop_at": self.stop_at is None or self.stop_at >= 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise InputError(f"train.{bad[0]} = {getattr(self, bad[0])!r} is out of range")

    def lr_at(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        progress = (step - self.warmup) / max(1, self.steps - self.warmup)
        cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * cosine)


@dataclass
class Auxiliary:
    """A second network trained beside the model with its own optimiser, e.g. a GAN
    discriminator. The trainer owns it like the model: it moves it to the device, wraps it for
    DDP (gradients averaged across ranks), steps its optimiser once per optimiser step (after
    every micro-batch of an accumulated step), and saves and restores it with the checkpoint."""

    module: nn.Module
    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0


class Task(Protocol):
    """What the loop needs from a model family.

    `loss` returns one scalar to back-propagate: the model's loss plus the loss of each
    auxiliary network, built so that each loss reaches only its own network's parameters
    (detach what crosses over). `aux` holds the auxiliary networks as the loop wraps them.
    `sample` draws the task's own grid of samples or reconstructions."""

    kind: str
    model: nn.Module

    def auxiliary(self) -> dict[str, Auxiliary]: ...

    def loss(
        self,
        model: nn.Module,
        batch: dict,
        step: int,
        generator: torch.Generator,
        aux: dict[str, nn.Module],
    ) -> tuple[torch.Tensor, dict[str, float]]: ...

    def sample(self, model: nn.Module, out_dir: Path, step: int) -> None: ...

    def export(self, model: nn.Module) -> tuple[dict, dict]:
        """(config dict, meta dict) to store with the exported EMA weights. A task may instead
        define `export_to(model, run_dir, step) -> Path` and write what it exports itself."""
        ...

    def state_tensors(self) -> dict[str, torch.Tensor]: ...

    def load_state_tensors(self, state: dict[str, torch.Tensor]) -> None: ...


# ---- distributed -----------------------------------------------------------------------
@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Distributed:
    """Read torchrun's environment; start a process group when there is more than one rank."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Distributed()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend)
    return Distributed(rank, world, local_rank)


def default_device(ddp: Distributed) -> torch.device:
    return torch.device("cuda", ddp.local_rank) if torch.cuda.is_available() else torch.device("cpu")


# ---- data order ------------------------------------------------------------------------
class StepBatchSampler(Sampler[list]):
    """Endless batches; the batch of step s on a rank is a pure function of (seed, s, rank).

    Without groups, epoch e is a permutation seeded by (seed, e), and the global batch of step s
    is the slice [s*B, (s+1)*B) of the concatenated epochs. With groups (items that stack, e.g.
    a folder's aspect-ratio buckets; see data/join.py), epoch e shuffles each group, cuts it
    into full batches of B (the remainder waits for the next epoch's shuffle) and shuffles the
    order of all batches; step s takes batch s mod n of epoch s div n. Either way the global
    batch is split evenly between ranks, so every rank's slice comes from the same group.
    With `with_epoch`, indices are (i, epoch): the dataset draws item i as in that epoch."""

    def __init__(
        self,
        length: int,
        batch_size: int,
        seed: int,
        start_step: int,
        rank: int = 0,
        world: int = 1,
        groups: Sequence[Hashable] | None = None,
        with_epoch: bool = False,
    ):
        if length == 0:
            raise InputError("the dataset is empty")
        self.length, self.batch_size, self.seed = length, batch_size, seed
        self.start_step, self.rank, self.world = start_step, rank, world
        self.with_epoch = with_epoch
        self._perm_epoch, self._perm = -1, torch.empty(0, dtype=torch.long)
        self.groups: dict[Hashable, list[int]] | None = None
        if groups is not None:
            self.groups = defaultdict(list)
            for i, g in enumerate(groups):
                self.groups[g].append(i)
            self.per_epoch = sum(len(m) // batch_size for m in self.groups.values())
            if self.per_epoch == 0:
                largest = max(len(m) for m in self.groups.values())
                raise InputError(
                    f"no group of clips that stack (aspect-ratio bucket) holds a full batch of {batch_size}: "
                    f"the largest has {largest}; lower the batch size to at most {largest} "
                    "(--batch-size, or train.batch_size in a recipe) or add clips"
                )
        self._batches_epoch, self._batches = -1, []

    def _epoch(self, epoch: int) -> torch.Tensor:
        # Kept until the next epoch starts: drawing the permutation again for every sample
        # cost 53 ms per batch of 256 from 40,000 clips, a quarter of a GPU training step.
        if epoch != self._perm_epoch:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(self.length, generator=generator), epoch
        return self._perm

    def _grouped_epoch(self, epoch: int) -> list[list[int]]:
        if epoch != self._batches_epoch:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            batches = []
            for key in sorted(self.groups, key=repr):
                members = self.groups[key]
                order = torch.randperm(len(members), generator=generator).tolist()
                full = len(members) // self.batch_size * self.batch_size
                shuffled = [members[k] for k in order[:full]]
                batches += [shuffled[lo : lo + self.batch_size] for lo in range(0, full, self.batch_size)]
            order = torch.randperm(len(batches), generator=generator).tolist()
            self._batches, self._batches_epoch = [batches[k] for k in order], epoch
        return self._batches

    def batch(self, step: int) -> list:
        per_rank = self.batch_size // self.world
        if self.groups is not None:
            epoch = step // self.per_epoch
            full = self._grouped_epoch(epoch)[step % self.per_epoch]
            out = full[self.rank * per_rank : (self.rank + 1) * per_rank]
            return [(i, epoch) for i in out] if self.with_epoch else out
        start = step * self.batch_size + self.rank * per_rank
        out = []
        for pos in range(start, start + per_rank):
            i = int(self._epoch(pos // self.length)[pos % self.length])
            out.append((i, pos // self.length) if self.with_epoch else i)
        return out

    def __iter__(self) -> Iterator[list]:
        step = self.start_step
        while True:
            yield self.batch(step)
            step += 1


def step_generator(seed: int, step: int, rank: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + step) * 1009 + rank)
    return g


# ---- checkpoints -----------------------------------------------------------------------
def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            tensors[f"{pid}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return tensors, {"param_groups": sd["param_groups"]}


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: dict) -> None:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": groups["param_groups"]})


class _StopRequest:
    """Ctrl-C and SIGTERM during `fit`. The first asks the loop to stop at the next step
    boundary: a signal landing inside the optimiser step once saved a half-applied step (some
    parameters one Adam step ahead). A second one while the checkpoint is written is noted and
    the save finishes; a third aborts at once."""

    def __init__(self):
        self.count = 0

    def __call__(self, signum, frame) -> None:
        self.count += 1
        if self.count >= 3:
            raise KeyboardInterrupt(f"signal {signum} a third time: stopping without saving")


class _Stopped(KeyboardInterrupt):
    pass


def latest_checkpoint(run_dir: Path) -> Path | None:
    ckpts = checkpoints(run_dir)
    return ckpts[-1] if ckpts else None


def checkpoints(run_dir: Path) -> list[Path]:
    """The run's complete checkpoints (those with a state.json), oldest first."""
    return [p.parent for p in sorted((Path(run_dir) / "checkpoints").glob("step_*/state.json"))]


def clean_leftovers(run_dir: Path) -> list[Path]:
    """Remove what an interrupted save can leave: temporary checkpoint folders, a step folder
    whose deletion was cut short (no state.json), the model folder's temporary copies."""
    run_dir = Path(run_dir)
    found = list((run_dir / "checkpoints").glob(".step_*")) + list((run_dir / "checkpoints").glob(".tmp_*"))
    found += [p for p in (run_dir / "checkpoints").glob("step_*") if not (p / "state.json").exists()]
    found += list(run_dir.glob(".model.*"))
    for p in found:
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    return found


_LOCKS: dict[str, object] = {}  # run folders this process holds


def lock_run(run_dir: Path) -> None:
    """An exclusive lock on the run folder, held for the rest of this process: two trainer
    processes writing one run would interleave checkpoints and logs. (Trainers of one process
    share it, as a resume test does.)"""
    run_dir.mkdir(parents=True, exist_ok=True)
    key = str(run_dir.resolve())
    if key in _LOCKS:
        return
    handle = open(run_dir / ".lock", "w")  # noqa: SIM115 (held open while the process lives)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise InputError(
            f"{run_dir}: another trainer is using this run folder; wait for it or choose another --run"
        ) from None
    _LOCKS[key] = handle
    atexit.register(handle.close)  # released as the process ends, without a ResourceWarning


class Trainer:
    def __init__(
        self,
        cfg: TrainConfig,
        task: Task,
        dataset: Dataset,
        run_dir: str | Path,
        collate: Callable | None = None,
        device: torch.device | None = None,
    ):
        self.cfg, self.task, self.dataset = cfg, task, dataset
        self.run_dir = Path(run_dir)
        self.collate = collate
        self.ddp = init_distributed()
        if cfg.batch_size % (self.ddp.world * cfg.accumulate):
            raise InputError(
                f"batch_size {cfg.batch_size} must divide evenly across {self.ddp.world} ranks x "
                f"{cfg.accumulate} accumulation steps"
            )
        self.device = device or default_device(self.ddp)
        self.bf16 = cfg.bf16 and bf16_is_fast(self.device)
        if cfg.bf16 and not self.bf16:
            warnings.warn(
                "this CPU has no native bf16 (AVX512 or AMX), where bf16 autocast runs about 20x slower "
                "than fp32: training in fp32",
                FilmstripWarning,
                stacklevel=2,
            )
        self.model = task.model.to(self.device)
        self.ema = EMA(self.model, cfg.ema_decay)
        decay, no_decay = [], []
        for p in self.model.parameters():
            if p.requires_grad:
                (decay if p.ndim >= 2 else no_decay).append(p)
        # The fused AdamW kernel: one pass over all parameters, 4x faster than the per-tensor
        # loop for the small DiT on a CPU (about 3% of a training step).
        fused = self.device.type in ("cpu", "cuda")
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr,
            betas=cfg.betas,
            fused=fused,
        )
        self.step = 0
        if self.ddp.is_main:
            lock_run(self.run_dir)
            clean_leftovers(self.run_dir)
        self.wrapped = self._wrap(self.model)
        if cfg.compile:  # shares the parameters: the EMA, checkpoints and samples see the same model
            self.wrapped = torch.compile(self.wrapped)
        # Auxiliary networks: each with its own optimiser, stepped once per optimiser step.
        self.aux = task.auxiliary()
        self.aux_wrapped = {name: self._wrap(a.module.to(self.device)) for name, a in self.aux.items()}
        self.aux_opt = {
            name: torch.optim.AdamW(
                a.module.parameters(), lr=a.lr, betas=a.betas, weight_decay=a.weight_decay, fused=fused
            )
            for name, a in self.aux.items()
        }

    def _wrap(self, module: nn.Module) -> nn.Module:
        if self.ddp.world == 1:
            return module
        return nn.parallel.DistributedDataParallel(
            module, device_ids=[self.device.index] if self.device.type == "cuda" else None
        )

    # -- state ---------------------------------------------------------------------------
    def save_checkpoint(self) -> Path | None:
        """Write a checkpoint of this step (and export the EMA model); on a full disk or a
        folder that cannot be written, one sentence instead of an OSError from deep inside."""
        if not self.ddp.is_main:
            return None
        try:
            return self._save_checkpoint()
        except OSError as e:
            clean_leftovers(self.run_dir)
            raise TrainingError(
                f"{self.run_dir}: could not write the checkpoint of step {self.step} ({e.strerror or e}); "
                "free disk space or fix the folder's permissions, then run the same command to resume "
                "from the last checkpoint"
            ) from None

    def _save_checkpoint(self) -> Path:
        ckpt_root = self.run_dir / "checkpoints"
        ckpt_root.mkdir(parents=True, exist_ok=True)
        final = ckpt_root / f"step_{self.step:07d}"
        with atomic_directory(final) as tmp:
            opt_tensors, opt_groups = optimizer_tensors(self.opt)
            save_tensors_atomic(tmp / "model.safetensors", self.model.state_dict())
            save_tensors_atomic(tmp / "ema.safetensors", self.ema.state_dict())
            save_tensors_atomic(tmp / "optimizer.safetensors", opt_tensors)
            save_tensors_atomic(tmp / "task.safetensors", self.task.state_tensors() or {"_": torch.zeros(1)})
            aux_groups = {}
            for name, aux in self.aux.items():
                aux_tensors, aux_groups[name] = optimizer_tensors(self.aux_opt[name])
                save_tensors_atomic(tmp / f"aux_{name}.safetensors", aux.module.state_dict())
                save_tensors_atomic(
                    tmp / f"aux_{name}_optimizer.safetensors", aux_tensors or {"_": torch.zeros(1)}
                )
            write_json_atomic(
                tmp / "state.json",
                {
                    "kind": self.task.kind,
                    "step": self.step,
                    "train": asdict(self.cfg),
                    "optimizer": opt_groups,
                    "aux_optimizers": aux_groups,
                },
            )
        for old in sorted(ckpt_root.glob("step_*"))[: -self.cfg.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
        self.export()
        return final

    def export(self) -> Path:
        # A task that keeps only part of its model (a LoRA's adapter) writes it itself.
        if hasattr(self.task, "export_to"):
            return self.task.export_to(self.ema.model, self.run_dir, self.step)
        config, meta = self.task.export(self.ema.model)
        return save_model(
            self.run_dir / "model", self.task.kind, config, self.ema.state_dict(), {**meta, "step": self.step}
        )

    def resume(self, path: Path | None = None) -> bool:
        """Load the newest checkpoint of the run (or `path`) that reads back whole, falling back
        to an older one past a damaged one; False when there is none. The log is cut back to
        the resumed step, so no step is logged twice."""
        candidates = [path] if path is not None else checkpoints(self.run_dir)[::-1]
        for k, ckpt in enumerate(candidates):
            try:
                self._load(ckpt)
            except (OSError, ValueError, KeyError, json.JSONDecodeError, SafetensorError) as e:
                if isinstance(e, CheckpointError) or path is not None or k == len(candidates) - 1:
                    raise CheckpointError(f"{ckpt}: cannot resume from this checkpoint ({e})") from None
                warnings.warn(
                    f"{ckpt} is damaged ({e}); resuming from {candidates[k + 1].name}",
                    FilmstripWarning,
                    stacklevel=2,
                )
                continue
            self._truncate_log()
            return True
        return False

    def _truncate_log(self) -> None:
        log = self.run_dir / "log.jsonl"
        if not self.ddp.is_main or not log.exists():
            return
        kept = []
        for line in log.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= self.step:
                    kept.append(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
        write_text_atomic(log, "".join(f"{line}\n" for line in kept))

    def _load(self, path: Path) -> None:
        state = json.loads((path / "state.json").read_text())
        if state["kind"] != self.task.kind:
            raise CheckpointError(f"{path}: a {state['kind']!r} run cannot resume as {self.task.kind!r}")
        weights = load_file(str(path / "model.safetensors"))
        mismatch = weights_mismatch(self.model, weights)
        if mismatch is not None:
            raise CheckpointError(
                f"{self.run_dir} was made with another model configuration ({mismatch}); resume it with "
                "the settings it was started with, or give a new --run folder"
            )
        self.model.load_state_dict(weights)
        self.ema.load_state_dict(load_file(str(path / "ema.safetensors")))
        load_optimizer(self.opt, load_file(str(path / "optimizer.safetensors")), state["optimizer"])
        task_state = load_file(str(path / "task.safetensors"))
        task_state.pop("_", None)
        self.task.load_state_tensors(task_state)
        for name, aux in self.aux.items():
            aux.module.load_state_dict(load_file(str(path / f"aux_{name}.safetensors")))
            aux_tensors = load_file(str(path / f"aux_{name}_optimizer.safetensors"))
            aux_tensors.pop("_", None)
            load_optimizer(self.aux_opt[name], aux_tensors, state["aux_optimizers"][name])
        self.step = int(state["step"])

    # -- loop ----------------------------------------------------------------------------
    def _zero_grad(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        for opt in self.aux_opt.values():
            opt.zero_grad(set_to_none=True)

    def _loader(self) -> Iterator[dict]:
        cfg = self.cfg
        sampler = StepBatchSampler(
            len(self.dataset),
            cfg.batch_size // cfg.accumulate,
            cfg.seed,
            self.step * cfg.accumulate,
            self.ddp.rank,
            self.ddp.world,
            groups=item_groups(self.dataset),
            with_epoch=varies_by_epoch(self.dataset),
        )
        loader = DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=cfg.num_workers,
            collate_fn=self.collate,
            persistent_workers=cfg.num_workers > 0,
        )
        return iter(loader)

    def _log(self, record: dict) -> None:
        if self.ddp.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self.run_dir / "log.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def _gradients(self, batches, autocast) -> dict[str, float]:
        """Forward and backward over `accumulate` micro-batches at this step's learning rate;
        returns their mean logs. Ranks average gradients on the last micro-batch only."""
        cfg = self.cfg
        self.model.train()
        for group in self.opt.param_groups:
            group["lr"] = cfg.lr_at(self.step)
        logs: dict[str, float] = {}
        for micro in range(cfg.accumulate):
            batch = next(batches)
            gen = step_generator(cfg.seed, self.step * cfg.accumulate + micro, self.ddp.rank, self.device)
            sync = micro == cfg.accumulate - 1 or self.ddp.world == 1
            with contextlib.ExitStack() as stack:
                if not sync:
                    for net in (self.wrapped, *self.aux_wrapped.values()):
                        stack.enter_context(net.no_sync())
                with autocast:
                    loss, micro_logs = self.task.loss(self.wrapped, batch, self.step, gen, self.aux_wrapped)
                (loss / cfg.accumulate).backward()
            for k, v in micro_logs.items():
                logs[k] = logs.get(k, 0.0) + v / cfg.accumulate
        return logs

    def _apply_gradients(self, bad_steps: int) -> None:
        """The optimisers' step and the EMA's, or with non-finite gradients (`bad_steps` in a
        row) none: one bad batch must not poison the weights, and a run that keeps producing
        them is broken and says so."""
        if bad_steps:
            self._zero_grad()
            self._log({"step": self.step + 1, "skipped": "non-finite gradients"})
            if bad_steps >= 10:
                raise TrainingError(
                    f"step {self.step}: non-finite gradients 10 times in a row; lower --lr or use --fp32"
                )
            return
        self.opt.step()
        for name, opt in self.aux_opt.items():
            if any(p.grad is not None for p in self.aux[name].module.parameters()):
                opt.step()  # once per optimiser step, whatever the accumulation
        self._zero_grad()
        self.ema.update(self.model, self.step)

    def fit(self, steps: int | None = None) -> dict:
        """Train until `steps` (default cfg.steps) and return the last logged values."""
        cfg = self.cfg
        end = steps if steps is not None else (cfg.stop_at if cfg.stop_at is not None else cfg.steps)
        batches = self._loader()
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)
        bar = tqdm(
            total=end,
            initial=self.step,
            disable=not self.ddp.is_main,
            dynamic_ncols=True,
            desc=self.task.kind,
        )
        last: dict = {}
        t0, steps_timed = time.perf_counter(), 0
        bad_steps = 0
        # Ctrl-C and SIGTERM (a batch scheduler's stop, `kill`; a job started in the background
        # of a script ignores SIGINT) stop the run at the next step boundary, after a save.
        stop = _StopRequest()
        previous = {}
        if threading.current_thread() is threading.main_thread():
            previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while self.step < end:
                logs = self._gradients(batches, autocast)
                grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                bad_steps = 0 if torch.isfinite(grad_norm) else bad_steps + 1
                self._apply_gradients(bad_steps)
                self.step += 1
                bar.update(1)
                if not bad_steps:
                    steps_timed += 1
                    if self.step % cfg.log_every == 0 or self.step == end:
                        elapsed = time.perf_counter() - t0
                        last = {
                            "step": self.step,
                            "lr": cfg.lr_at(self.step - 1),
                            "grad_norm": float(grad_norm),
                            "it_s": steps_timed / max(elapsed, 1e-9),
                            **logs,
                        }
                        self._log(last)
                        bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k in ("loss", "psnr")})
                        t0, steps_timed = time.perf_counter(), 0
                    if self.ddp.is_main and cfg.sample_every and self.step % cfg.sample_every == 0:
                        self.task.sample(self.ema.model, self.run_dir / "samples", self.step)
                    if cfg.ckpt_every and self.step % cfg.ckpt_every == 0:
                        self.save_checkpoint()
                if stop.count:
                    raise _Stopped()
        except KeyboardInterrupt as e:
            bar.close()
            if stop.count >= 3:
                raise
            # The step is whole here: a signal only ever stops the loop between steps. A second
            # signal during the save is counted and the save finishes; a third aborts it.
            path = self.save_checkpoint()
            if path is not None:
                print(f"\ninterrupted: saved {path}; run the same command again to resume")
            raise KeyboardInterrupt(str(e) or "stopped by a signal") from None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        bar.close()
        if self.step % max(cfg.ckpt_every, 1) != 0 or not cfg.ckpt_every:
            self.save_checkpoint()
        if self.ddp.is_main and not (self.run_dir / "model" / "config.json").exists():
            self.export()  # a finished run whose model folder was deleted: write it again
        return last
