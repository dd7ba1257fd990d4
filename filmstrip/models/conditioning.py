"""What the DiT reads besides the noisy latents and their noise levels, as one typed object.

Conditions enter the model through two generic paths:

* **tokens** for cross-attention: `context` (B, L, context_dim) with a boolean `context_mask`
  (B, L), True for real tokens. Text is this kind; a model built with `context_dim = 0` has
  no cross-attention and runs without a text encoder.
* **per-frame vectors** added to the AdaLN input of every token of a latent frame: `vectors`
  maps a name declared in `DiTConfig.vectors` to (B, T, dim) at the latent frame rate
  (actions, camera poses, a motion score). A row whose `present` flag is False contributes
  nothing, which is that condition's null: what guidance and condition dropout compare with.

A fourth kind is read by a side branch, not by the DiT itself: `control`, per-frame structure
maps (B, C, T, H, W) at the pixel frame rate and size, in [0, 1] (object masks, edges), for
a ControlNet (models/controlnet.py). A plain DiT refuses them.

The third kind is clean latent frames (image, keyframe and video conditioning). They are
latents like the ones being generated, so they enter as latents, through
`diffusion/frames.py`, never through the model's own inputs:

* **in place**: a frame of the clip itself holds its clean latent at noise level 0 in the
  per-frame `t` (the first frame, or a prefix: the causal VAE encodes them exactly as in the
  whole clip). This lives in the sampler's state and schedule; a level that must not see
  such a frame (the null of image guidance) lists it in `unseen`, with its clean latent and
  its noise, and sees it as an unconditioned frame would be: noised to the level of the rest.
* **appended**: `keyframes` (B, C, K, H, W), each an image encoded alone, added after the
  clip's frames at noise level 0 with the time position `key_times` (K,) of the moment it
  shows; the prediction for them is dropped. The null of a keyframe is its absence.
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
    keyframes: torch.Tensor | None = None  # (B, C, K, H, W) clean latents appended after the clip
    key_times: torch.Tensor | None = None  # (K,) time position of each, in latent frames
    unseen: torch.Tensor | None = None  # (B, T) bool: in-place clean frames this level must not see
    unseen_latents: torch.Tensor | None = None  # (B, C, T, H, W) their clean latents
    unseen_noise: torch.Tensor | None = None  # (B, C, T, H, W) and their noise
    control: torch.Tensor | None = None  # (B, C, T, H, W) structure maps in [0, 1], pixel frames
    # The model's work on the text alone (refined tokens, cross-attention keys and values),
    # kept across calls when this is a dict. None: recomputed each call. A sampling run gives
    # its conditionings fresh dicts (`diffusion.guidance.guided`): 20 steps read one prompt.
    memo: dict | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if (self.keyframes is None) != (self.key_times is None):
            raise InputError("keyframes need both their latents and their time positions")
        if self.keyframes is not None and self.key_times.shape != (self.keyframes.shape[2],):
            raise InputError(
                f"{self.keyframes.shape[2]} keyframes need as many time positions, got {tuple(self.key_times.shape)}"
            )
        if (self.unseen is None) != (self.unseen_latents is None) or (self.unseen is None) != (
            self.unseen_noise is None
        ):
            raise InputError("unseen frames need their mask, clean latents and noise")
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
        for t in (self.keyframes, self.unseen, self.control):
            if t is not None:
                return t.shape[0]
        return next((v.shape[0] for v in self.vectors.values()), None)

    @property
    def has_frames(self) -> bool:
        """Whether this conditioning holds clean-frame conditions (see diffusion/frames.py)."""
        return self.keyframes is not None or self.unseen is not None

    @property
    def num_keyframes(self) -> int:
        return 0 if self.keyframes is None else self.keyframes.shape[2]

    def without_frames(self) -> Conditioning:
        """The model's own inputs: text and vectors, without the clean-frame conditions."""
        return Conditioning(
            self.context, self.context_mask, self.vectors, self.present, control=self.control, memo=self.memo
        )

    def without_control(self) -> Conditioning:
        """All but the structure maps: what the DiT reads while a ControlNet reads those."""
        return Conditioning(
            self.context, self.context_mask, self.vectors, self.present, key_times=self.key_times,
            memo=self.memo, **self._frame_fields(lambda x: x),
        )  # fmt: skip

    def _frame_fields(self, fn) -> dict:
        opt = lambda x: None if x is None else fn(x)  # noqa: E731
        return {
            "keyframes": opt(self.keyframes),
            "unseen": opt(self.unseen),
            "unseen_latents": opt(self.unseen_latents),
            "unseen_noise": opt(self.unseen_noise),
        }

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
            key_times=self.key_times.to(device) if self.key_times is not None else None,
            control=self.control.to(device) if self.control is not None else None,
            **self._frame_fields(lambda x: x.to(device)),
        )

    def rows(self, index: slice | torch.Tensor) -> Conditioning:
        """The conditioning of a subset of the batch."""
        return Conditioning(
            self.context[index] if self.context is not None else None,
            self.context_mask[index] if self.context_mask is not None else None,
            {k: v[index] for k, v in self.vectors.items()},
            {k: self.is_present(k)[index] for k in self.vectors},
            key_times=self.key_times,
            control=self.control[index] if self.control is not None else None,
            **self._frame_fields(lambda x: x[index]),
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
            control=other.control if other.control is not None else self.control,
            **self._merge_frames(other),
        )

    def _merge_frames(self, other: Conditioning) -> dict:
        """Keyframes and unseen frames of both; two sets of keyframes are appended in order."""
        out: dict = {}
        firsts = [c for c in (self, other) if c.keyframes is not None]
        if firsts:
            out["keyframes"] = torch.cat([c.keyframes for c in firsts], dim=2)
            out["key_times"] = torch.cat([c.key_times for c in firsts])
        seen = [c for c in (self, other) if c.unseen is not None]
        if len(seen) == 1:
            c = seen[0]
            out.update(unseen=c.unseen, unseen_latents=c.unseen_latents, unseen_noise=c.unseen_noise)
        elif seen:
            mask = self.unseen[:, None, :, None, None]
            out.update(
                unseen=self.unseen | other.unseen,
                unseen_latents=torch.where(mask, self.unseen_latents, other.unseen_latents),
                unseen_noise=torch.where(mask, self.unseen_noise, other.unseen_noise),
            )
        return out

    @staticmethod
    def cat(items: Sequence[Conditioning]) -> Conditioning:
        """Stack along the batch: token sequences are padded to the longest, and a vector that
        some items lack is filled with zeros and marked absent there. An item with no tensors
        at all (an empty conditioning) counts as many rows as the others."""
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
                n = Conditioning._rows(it, items)
                if name in it.vectors:
                    parts.append(it.vectors[name])
                    flags.append(it.is_present(name))
                else:
                    parts.append(like.new_zeros(n, *like.shape[1:]))
                    flags.append(torch.zeros(n, dtype=torch.bool, device=like.device))
            vectors[name], present[name] = torch.cat(parts), torch.cat(flags)
        controls = [it.control for it in items]
        if any(c is None for c in controls) and any(c is not None for c in controls):
            raise InputError("cannot batch conditionings with and without structure maps")
        control = torch.cat(controls) if controls and controls[0] is not None else None
        return Conditioning(
            context, mask, vectors, present, control=control, **Conditioning._cat_frames(items)
        )

    @staticmethod
    def _rows(item: Conditioning, items: Sequence[Conditioning]) -> int:
        n = item.batch_size
        return n if n is not None else next((it.batch_size for it in items if it.batch_size is not None), 0)

    @staticmethod
    def _cat_frames(items: Sequence[Conditioning]) -> dict:
        """Keyframes batch only with the same keyframes positions (one forward shares them);
        unseen frames are filled with 'none unseen' for items that have none."""
        out: dict = {}
        keyed = [it.keyframes is not None for it in items]
        if any(keyed):
            if not all(keyed) or any(not torch.equal(it.key_times, items[0].key_times) for it in items):
                raise InputError("cannot batch conditionings with different keyframe positions")
            out["keyframes"] = torch.cat([it.keyframes for it in items])
            out["key_times"] = items[0].key_times
        like = next((it for it in items if it.unseen is not None), None)
        if like is not None:
            for name in ("unseen", "unseen_latents", "unseen_noise"):
                ref = getattr(like, name)
                out[name] = torch.cat(
                    [getattr(it, name) if it.unseen is not None
                     else ref.new_zeros(Conditioning._rows(it, items), *ref.shape[1:]) for it in items]
                )  # fmt: skip
        return out
