"""Training a ControlNet (models/controlnet.py) on a frozen text-to-video DiT.

The loss is the text-to-video task's own (t2v_task.py), with each clip's structure maps in
its conditioning: the branch learns to steer the frozen model towards where the maps say
things are. The run exports the branch alone (RUN/model, kind "controlnet"); checkpoints
hold the whole model, so a run resumes exactly.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from filmstrip.diffusion.spec import ModelSpec
from filmstrip.models.controlnet import ControlledDiT, ControlNet, ControlNetConfig, save_controlnet
from filmstrip.models.dit import VideoDiT
from filmstrip.train.t2v_task import T2VConfig, T2VTask


class ControlTask(T2VTask):
    kind = "controlnet"

    def __init__(
        self,
        base: VideoDiT,
        spec: ModelSpec,
        cfg: T2VConfig,
        control: ControlNetConfig,
        null_text: torch.Tensor,
        data_name: str = "",
        base_name: str = "",
        branch: ControlNet | None = None,
    ):
        """base: the trained DiT (frozen here); the branch starts as copies of its first blocks,
        or as `branch`, one trained before."""
        super().__init__(base.cfg, spec, cfg, null_text, None, data_name)
        base.requires_grad_(False)
        branch = branch if branch is not None else ControlNet.from_dit(base, control)
        self.model = ControlledDiT(base, branch.requires_grad_(True))
        self.base_name = base_name

    def export_to(self, model: nn.Module, run_dir: Path, step: int) -> Path:
        """Write the branch of `model` (the EMA copy) as RUN/model."""
        meta = {"data": self.data_name, "base_model": self.base_name, "step": step}
        return save_controlnet(Path(run_dir) / "model", model.net, meta)
