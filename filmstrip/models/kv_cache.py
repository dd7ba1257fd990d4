"""The keys and values a block-causal DiT has already computed, kept for the frames to come.

A causal DiT's latent frame attends to itself and the frames before it, never after. Once a
frame is made, its keys and values in every block never change, so a rollout computes them
once (a forward pass over the finished chunk that writes them here) and each later chunk's
queries read them instead of recomputing the whole past. Memory and cost per frame then
depend on how many frames are kept, not on how many were made:

* a **rolling window** keeps the newest `window` latent frames;
* **attention sinks** keep the first `sink` frames for ever (StreamingLLM's observation that
  the first tokens anchor attention; here frame 0 is also the one latent the causal VAE
  encodes from a single image, unlike every later one).

Keys are stored after their QK-norm but before RoPE, in float32, and rotated when read. The
positions they are rotated to are a choice (`positions`):

* "continue": every frame keeps its absolute index (frame 900 sits at 900);
* "reindex": the kept frames are numbered 0, 1, ... in the order they sit in the cache, and
  a new chunk continues from there.

RoPE sees only differences, so without eviction, or with a window and no sinks, the two give
identical attention. They differ once sinks are kept and frames between them and the window
are dropped: "continue" puts the sink ever further in the past, at distances training never
showed; "reindex" keeps it just before the window, where training put frame 0. Measured over
a minute (docs/RESULTS.md, session 17), "continue" wins clearly: reindexed, the sink says the
object started four latent frames ago, which contradicts where the window shows it, and the
motion stalls (speed kept 54% against 93%, accuracy 81% against 92% in the first ten
seconds). Far away, the sink still anchors what the objects look like but no longer where
they should be. "continue" is the default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch

from filmstrip.errors import InputError
from filmstrip.models.rope import apply_rope, grid_positions, rope_angles, rotations

POSITIONS = ("continue", "reindex")
T = TypeVar("T")


@dataclass(frozen=True)
class CacheConfig:
    # newest latent frames kept besides the sinks (0: keep everything); 3 + 1 sink + the chunk
    # being made is the 5 latent frames the bundled models were trained on
    window: int = 3
    sink: int = 1  # first latent frames kept for ever
    positions: str = "continue"  # or "reindex" (see the module docstring)

    def __post_init__(self):
        if self.window < 0 or self.sink < 0:
            raise InputError(
                f"window and sink are numbers of latent frames >= 0, got {self.window}, {self.sink}"
            )
        if self.positions not in POSITIONS:
            raise InputError(f"positions must be one of {', '.join(POSITIONS)}, got {self.positions!r}")


class KVCache:
    """Per-block keys (B, heads, F * S, d) before RoPE and values, for F cached latent frames
    of S tokens each, with each frame's absolute index. Sized from the model: `for_model`."""

    def __init__(self, depth: int, heads: int, head_dim: int, rope_theta: float, cfg: CacheConfig):
        self.depth, self.heads, self.head_dim, self.rope_theta = depth, heads, head_dim, rope_theta
        self.cfg = cfg
        self.keys: list[torch.Tensor | None] = [None] * depth
        self.values: list[torch.Tensor | None] = [None] * depth
        self.times = torch.zeros(0, dtype=torch.long)  # (F,) absolute index of each cached frame
        self.made = 0  # frames appended so far: the absolute index of the next one
        self.grid: tuple[int, int] | None = None  # (H', W') tokens of a frame
        # Values that depend only on the prompt (the refined text, each block's cross-attention
        # keys and values): computed once per prompt, not once per call (`memo`).
        self._memo: dict[str, tuple[tuple[torch.Tensor, ...], object]] = {}
        # Set by `begin` for one forward pass.
        self._writing = False
        self._past_rot: torch.Tensor | None = None
        self._staged = 0

    @classmethod
    def for_model(cls, dit, cfg: CacheConfig | None = None) -> KVCache:
        if dit.cfg.attention != "full" or not dit.cfg.causal:
            raise InputError("a KV cache serves a causal DiT with full attention (DiTConfig causal=True)")
        return cls(dit.cfg.depth, dit.cfg.heads, dit.cfg.head_dim, dit.cfg.rope_theta, cfg or CacheConfig())

    # ---- what is cached -----------------------------------------------------------------
    @property
    def frames(self) -> int:
        return len(self.times)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values) if t is not None)

    def positions(self) -> torch.Tensor:
        """(F,) float time positions the cached frames are rotated to."""
        if self.cfg.positions == "continue":
            return self.times.float()
        return torch.arange(self.frames, dtype=torch.float32)

    def next_positions(self, n: int) -> torch.Tensor:
        """(n,) float time positions of a chunk of n new frames."""
        start = self.made if self.cfg.positions == "continue" else self.frames
        return torch.arange(start, start + n, dtype=torch.float32)

    def memo(self, key: str, inputs: tuple[torch.Tensor, ...], compute: Callable[[], T]) -> T:
        """compute(), or its value from an earlier call with equal `inputs` (compared by value,
        so a new prompt recomputes): a stream calls the model many times per prompt."""
        hit = self._memo.get(key)
        if hit is not None and all(
            a.shape == b.shape and torch.equal(a, b) for a, b in zip(hit[0], inputs, strict=True)
        ):
            return hit[1]
        value = compute()
        self._memo[key] = (tuple(x.detach().clone() for x in inputs), value)
        return value

    # ---- one forward pass ---------------------------------------------------------------
    def begin(self, grid_hw: tuple[int, int], write: bool, device: torch.device, double: bool) -> None:
        """Called by the DiT before its blocks: the RoPE table of the cached tokens, and
        whether this pass appends the chunk it computes."""
        if self.grid is not None and self.grid != grid_hw and self.frames:
            raise InputError(f"the cache holds frames of {self.grid} tokens, this chunk has {grid_hw}")
        self.grid = grid_hw
        self._writing, self._staged = write, 0
        self._past_rot = None
        if self.frames:
            pos = grid_positions(self.frames, *grid_hw, device=device)
            pos[:, 0] = self.positions().to(device).repeat_interleave(grid_hw[0] * grid_hw[1])
            self._past_rot = rotations(rope_angles(pos, self.head_dim, self.rope_theta), double)

    def extend(
        self, block: int, k_unrotated: torch.Tensor, k_rotated: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Block `block`'s keys and values for attention: the cached ones (rotated to their
        positions) followed by the chunk's own. k_unrotated: (B, heads, n * S, d) after the
        QK-norm, float32; k_rotated, v: the chunk's keys after RoPE and its values. Stages the
        chunk's keys and values when this pass writes."""
        if self._writing:
            self.keys[block] = (
                k_unrotated if self.keys[block] is None else torch.cat([self.keys[block], k_unrotated], 2)
            )
            self.values[block] = v if self.values[block] is None else torch.cat([self.values[block], v], 2)
            self._staged += 1
        if self._past_rot is None:
            return k_rotated, v
        past_k, past_v = self.keys[block], self.values[block]
        if past_k.shape[0] != v.shape[0]:
            raise InputError(
                f"the cache was filled for a batch of {past_k.shape[0]} rows, this chunk has {v.shape[0]}"
            )
        n_past = self._past_rot.shape[0]
        past_k = apply_rope(past_k[:, :, :n_past], self._past_rot).to(v.dtype)
        past_v = past_v[:, :, :n_past].to(v.dtype)
        return torch.cat([past_k, k_rotated], dim=2), torch.cat([past_v, v], dim=2)

    def end(self, chunk_frames: int) -> None:
        """Called by the DiT after its blocks: a writing pass commits its chunk (every block
        staged it) and the window rolls."""
        if not self._writing:
            return
        if self._staged != self.depth:
            raise RuntimeError(f"{self._staged} of {self.depth} blocks wrote to the KV cache")
        self.times = torch.cat([self.times, torch.arange(self.made, self.made + chunk_frames)])
        self.made += chunk_frames
        self._writing, self._past_rot = False, None
        if self.cfg.window:
            self.evict(self.cfg.window, self.cfg.sink)

    # ---- editing ------------------------------------------------------------------------
    def _keep(self, frames: torch.Tensor) -> None:
        """Keep the cached frames at these (sorted) slots."""
        s = self.grid[0] * self.grid[1]
        tokens = (frames[:, None] * s + torch.arange(s)).flatten()
        for i in range(self.depth):
            if self.keys[i] is not None:
                index = tokens.to(self.keys[i].device)
                self.keys[i] = self.keys[i].index_select(2, index)
                self.values[i] = self.values[i].index_select(2, index)
        self.times = self.times[frames]

    def evict(self, window: int, sink: int = 0) -> None:
        """Keep the first `sink` frames made (if still cached) and the newest `window`."""
        if self.frames <= sink + window:
            return
        slots = torch.arange(self.frames)
        keep = (self.times < sink) | (slots >= self.frames - window)
        self._keep(slots[keep])

    def truncate(self, frames: int) -> None:
        """Keep the oldest `frames` cached frames and forget the rest (roll back a chunk)."""
        if not 0 <= frames <= self.frames:
            raise InputError(f"cannot truncate a cache of {self.frames} frames to {frames}")
        if frames < self.frames:
            self._keep(torch.arange(frames))
            self.made = int(self.times[-1]) + 1 if frames else 0
