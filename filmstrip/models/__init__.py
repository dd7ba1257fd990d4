"""Models: the video autoencoders, the video DiT and their parts."""

from torch import nn


def num_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
