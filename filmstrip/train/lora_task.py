"""Teaching a trained text-to-video DiT something new with a LoRA: the text-to-video task on a
frozen model whose only trainable weights are low-rank adapters (models/lora.py).

The loss and the frame conditioning are the text-to-video task's own (t2v_task.py), so the
adapter learns under the conditions the base model was trained with; only where its noise
levels fall may differ (`shift`: a new shape's outline is drawn at lower noise than the
layout and motion the base's shift was chosen for). What also differs is what is kept: the
run exports the adapter alone, as one small safetensors file (RUN/lora.safetensors), every
time the trainer exports; checkpoints hold the whole model as usual, so an interrupted run
resumes exactly.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import torch
from torch import nn

from filmstrip.diffusion.spec import ModelSpec
from filmstrip.models.dit import VideoDiT
from filmstrip.models.lora import LoRAConfig, add_lora, save_lora
from filmstrip.train.t2v_task import Preview, T2VConfig, T2VTask

ADAPTER = "default"


class LoRATask(T2VTask):
    kind = "lora"

    def __init__(
        self,
        base: VideoDiT,
        spec: ModelSpec,
        cfg: T2VConfig,
        lora: LoRAConfig,
        null_text: torch.Tensor,
        preview: Preview | None = None,
        data_name: str = "",
        base_name: str = "",
        shift: float | None = None,
    ):
        """base: the trained DiT, its weights loaded; it gets the adapter in place and stays
        frozen. base_name: where it came from, recorded with the adapter. shift: the timestep
        shift of the training noise levels (None: the base's; previews sample at the base's)."""
        super().__init__(base.cfg, spec, cfg, null_text, preview, data_name)
        if shift is not None:
            self.noise_spec = replace(spec, flow=replace(spec.flow, shift=shift))
        self.model = add_lora(base, lora, ADAPTER)
        self.lora, self.base_name = lora, base_name

    def export(self, model: nn.Module) -> tuple[dict, dict]:
        return {"lora": asdict(self.lora), "base": asdict(self.dit_cfg)}, {
            "data": self.data_name,
            "base_model": self.base_name,
        }

    def export_to(self, model: nn.Module, run_dir: Path, step: int) -> Path:
        """Write the adapter of `model` (the EMA copy) as RUN/lora.safetensors."""
        # noise_shift: the training noise levels' shift (None: the base's token-count rule).
        notes = {
            "data": self.data_name, "base_model": self.base_name, "step": step,
            "noise_shift": self.noise_spec.flow.shift,
        }  # fmt: skip
        return save_lora(Path(run_dir) / "lora.safetensors", model, ADAPTER, asdict(self.dit_cfg), notes)
