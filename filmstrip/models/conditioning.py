"""What the DiT reads besides the noisy latents and their noise levels, as one typed object.

Conditions enter the model through two generic paths:

* **tokens** for cross-attention: `context` (B, L, context_dim) with a boolean `context_mask`
  (B, L), True for real tokens. Text is this kind; a model built with `context_dim = 0` has
  no cross-attention and runs without a text encoder.
* **per-frame vectors** added to the AdaLN input of every token of a latent frame: `vectors`
  maps a name declared in `DiTConfig.vectors` to (B, T, dim) at the latent frame rate
  (actions, camera poses, a motion score). A row whose `present` flag is False contributes
  nothing, which is that condition's null: what guidance and condition dropout compare with.

The third kind, clean latent frames at given positions (image and keyframe conditioning),
needs no model input at all: those frames hold their clean latents with noise level 0 in the
per-frame `t`, and the sampler leaves a frame whose schedule column stays at 0 untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from filmstrip.errors import InputError


def pad_tokens(states: torch.Tensor, mask: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad (B, L, D) states and their (B, L) mask to `length` tokens."""
    extra = length - states.shape[1]
    if extra <= 0:
        return states, mask
    return (
        torch.cat([states, states.new_zeros(states.shape[0], extra, states.shape[2])], dim=1),
        torch.cat([mask, mask.new_zeros(mask.shape[0], extra)], dim=1),
    )


@dataclass
class Conditioning:
    context: torch.Tensor | None = None  # (B, L, context_dim)
    context_mask: torch.Tensor | None = None  # (B, L) bool
    vectors: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (B, T, dim)
    present: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (B,) bool; absent: all

    def __post_init__(self):
        if (self.context is None) != (self.context_mask is None):
            raise InputError("a token condition needs both its states and its mask")
        if self.context is not None and self.context_mask.shape != self.context.shape[:2]:
            raise InputError(
                f"context mask {tuple(self.context_mask.shape)} does not fit context {tuple(self.context.shape)}"
            )

    @property
    def batch_size(self) -> int | None:
        if self.context is not None:
            return self.context.shape[0]
        return next((v.shape[0] for v in self.vectors.values()), None)

    def is_present(self, name: str) -> torch.Tensor:
        """(B,) bool: which rows carry vector condition `name`."""
        v = self.vectors[name]
        return self.present.get(name, torch.ones(v.shape[0], dtype=torch.bool, device=v.device))

    def to(self, device: torch.device | str) -> Conditioning:
        move = lambda d: {k: v.to(device) for k, v in d.items()}  # noqa: E731
        return Conditioning(
            self.context.to(device) if self.context is not None else None,
            self.context_mask.to(device) if self.context_mask is not None else None,
            move(self.vectors),
            move(self.present),
        )

    def rows(self, index: slice | torch.Tensor) -> Conditioning:
        """The conditioning of a subset of the batch."""
        return Conditioning(
            self.context[index] if self.context is not None else None,
            self.context_mask[index] if self.context_mask is not None else None,
            {k: v[index] for k, v in self.vectors.items()},
            {k: self.is_present(k)[index] for k in self.vectors},
        )

    def merge(self, other: Conditioning) -> Conditioning:
        """Both conditionings' conditions in one (for rows of the same batch); `other` wins."""
        use_other = other.context is not None
        return Conditioning(
            other.context if use_other else self.context,
            other.context_mask if use_other else self.context_mask,
            {**self.vectors, **other.vectors},
            {
                **{k: self.is_present(k) for k in self.vectors},
                **{k: other.is_present(k) for k in other.vectors},
            },
        )

    @staticmethod
    def cat(items: Sequence[Conditioning]) -> Conditioning:
        """Stack along the batch: token sequences are padded to the longest, and a vector that
        some items lack is filled with zeros and marked absent there."""
        if len({it.context is None for it in items}) > 1:
            raise InputError("cannot batch conditionings with and without token context")
        context = mask = None
        if items[0].context is not None:
            length = max(it.context.shape[1] for it in items)
            padded = [pad_tokens(it.context, it.context_mask, length) for it in items]
            context, mask = torch.cat([p[0] for p in padded]), torch.cat([p[1] for p in padded])
        vectors, present = {}, {}
        for name in dict.fromkeys(k for it in items for k in it.vectors):
            like = next(it.vectors[name] for it in items if name in it.vectors)
            parts, flags = [], []
            for it in items:
                n = it.batch_size or 0
                if name in it.vectors:
                    parts.append(it.vectors[name])
                    flags.append(it.is_present(name))
                else:
                    parts.append(like.new_zeros(n, *like.shape[1:]))
                    flags.append(torch.zeros(n, dtype=torch.bool, device=like.device))
            vectors[name], present[name] = torch.cat(parts), torch.cat(flags)
        return Conditioning(context, mask, vectors, present)
