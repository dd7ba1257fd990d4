"""The video Diffusion Transformer: latents + noise level per frame + conditions -> a prediction.

    latents (B, C, T, H, W) --patchify--> tokens (B, N, D), N = T/pt * H/ph * W/pw
    t (B, T) --sinusoid + MLP--> c (B, T', D), plus the pooled text vector
    text tokens --optional refiner (self-attention over the prompt, 1D RoPE)--> context
    frame index k --sinusoid + MLP--> added to c (optional: absolute time; RoPE is relative)
    each per-frame condition vector (action, camera, ...) --MLP--> added to c of its frame
    place in the frame (y, x) --sinusoid + MLP--> added to the tokens (optional: absolute space)
    for each block:
        x += gate_1 * SelfAttention(modulate(norm(x), shift_1, scale_1))    3D RoPE, full or (2+1)D
        x += CrossAttention(norm(x), text tokens, text mask)                 when there is text
        x += gate_2 * MLP(modulate(norm(x), shift_2, scale_2))
    (shift, scale, gate) come from c of *the token's own frame* (AdaLN-Zero, per frame)
    final: modulate(norm(x)) -> Linear -> unpatchify -> (B, C, T, H, W)

The model knows nothing about diffusion: what it predicts (a velocity, for rectified flow)
is decided by the objective that trains it. Every gate, the cross-attention output and the
final layer start at zero, so a fresh model outputs zeros and every fresh block is the
identity; training opens them as they become useful. Conditions arrive as one
`Conditioning` (models/conditioning.py); a model with `context_dim = 0` has no text path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

import torch
from einops import rearrange
from torch import nn

from filmstrip.config import check_types
from filmstrip.errors import InputError
from filmstrip.models import num_parameters  # noqa: F401 (part of this module's API)
from filmstrip.models.attention import CrossAttention, SelfAttention
from filmstrip.models.camera_rope import world_positions
from filmstrip.models.conditioning import Conditioning
from filmstrip.models.embeddings import (
    ConditionEmbedding,
    FrameEmbedding,
    PlaceEmbedding,
    TimestepEmbedding,
    patchify,
    unpatchify,
)
from filmstrip.models.kv_cache import KVCache
from filmstrip.models.rope import grid_positions, rope_angles, rotations
from filmstrip.models.text_refiner import TextRefiner

T = TypeVar("T")

REFINER_HEAD_DIM = 64  # the text refiner's heads: 6 over all-MiniLM-L6-v2's 384 channels


@dataclass(frozen=True)
class DiTConfig:
    in_channels: int = 16  # latent channels of the VAE
    patch: tuple[int, int, int] = (1, 2, 2)
    width: int = 256
    depth: int = 6
    heads: int = 4
    mlp_ratio: float = 4.0
    context_dim: int = 384  # text encoder width (all-MiniLM-L6-v2); 0: no text, no cross-attention
    attention: str = "full"  # "full" spatiotemporal, or "factorized": spatial then temporal
    rope_theta: float = 10_000.0
    # Tell every token its absolute latent-frame index through AdaLN (see FrameEmbedding).
    frame_embedding: bool = False
    # Tell every token where in the frame it is, as fractions of H and W (see PlaceEmbedding).
    place_embedding: bool = False
    # Trainable self-attention layers over the text tokens before cross-attention reads them,
    # so each word can gather its clause (see text_refiner.py); 0: read the encoder's states.
    text_refiner: int = 0
    # Per-frame condition vectors added to the AdaLN input: (name, dim) pairs, e.g.
    # (("action", 18),) for a world model. See models/conditioning.py.
    vectors: tuple[tuple[str, int], ...] = ()
    # Block-causal self-attention over latent frames: a frame attends to itself and the
    # frames before it, so a rollout can keep the past in a KV cache (models/kv_cache.py).
    causal: bool = False
    # RoPE in world coordinates: each frame's spatial positions moved by the `camera`
    # condition's pan and zoom (models/camera_rope.py), so a spot of the world keeps its
    # position from frame to frame. Needs the ("camera", 3) vector and full, non-causal attention.
    camera_rope: bool = False

    def __post_init__(self):
        check_types(self, "dit")
        object.__setattr__(self, "patch", tuple(self.patch))
        object.__setattr__(self, "vectors", tuple((str(n), int(d)) for n, d in self.vectors))
        if len({n for n, _ in self.vectors}) != len(self.vectors) or any(d < 1 for _, d in self.vectors):
            raise InputError(f"vectors must have distinct names and positive sizes, got {self.vectors}")
        if self.context_dim < 0:
            raise InputError(f"context_dim is a width (0: no text), got {self.context_dim}")
        if self.text_refiner and not self.context_dim:
            raise InputError("a text refiner needs text: context_dim must be positive")
        if self.attention not in ("full", "factorized"):
            raise InputError(f"attention must be 'full' or 'factorized', got {self.attention!r}")
        if self.width % self.heads or (self.width // self.heads) % 2:
            raise InputError(f"width {self.width} must split into {self.heads} heads of even size")
        if self.causal and self.attention != "full":
            raise InputError("a causal DiT needs attention='full' (its KV cache holds whole frames)")
        if self.text_refiner < 0:
            raise InputError(f"text_refiner is a number of layers, got {self.text_refiner}")
        if self.camera_rope and (
            ("camera", 3) not in self.vectors or self.attention != "full" or self.causal
        ):
            raise InputError("camera_rope needs the vector ('camera', 3) and full, non-causal attention")
        if self.text_refiner and self.context_dim % REFINER_HEAD_DIM:
            raise InputError(f"a text refiner needs context_dim divisible by {REFINER_HEAD_DIM}")

    @property
    def head_dim(self) -> int:
        return self.width // self.heads


PRESETS: dict[str, DiTConfig] = {
    "tiny": DiTConfig(width=48, depth=2, heads=4),  # head dim 12: tests
    "small": DiTConfig(width=256, depth=6, heads=4),  # trains on a laptop CPU
    "base": DiTConfig(width=384, depth=12, heads=6),
    "large": DiTConfig(width=768, depth=24, heads=12),  # needs a GPU
}


def preset(name: str, **overrides) -> DiTConfig:
    if name not in PRESETS:
        raise InputError(f"unknown DiT preset {name!r}; choose from {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class DiTBlock(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        d = cfg.width
        self.factorized = cfg.attention == "factorized"
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(d, cfg.heads)
        # (2+1)D: a second, temporal attention after the spatial one, with its own modulation.
        self.norm_t = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6) if self.factorized else None
        self.attn_t = SelfAttention(d, cfg.heads) if self.factorized else None
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.cross = CrossAttention(d, cfg.context_dim, cfg.heads) if cfg.context_dim else None
        self.norm3 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        hidden = int(d * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d))
        self.num_mod = 9 if self.factorized else 6
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(d, self.num_mod * d))

    def forward(
        self,
        x_btsd: torch.Tensor,
        c_btd: torch.Tensor,
        rot: torch.Tensor,
        context: torch.Tensor | None,
        context_mask: torch.Tensor | None,
        mask: torch.Tensor | None = None,
        cache: tuple[KVCache, int] | None = None,
        text_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """x: (B, T', S, D) tokens, S = H' * W' per frame; c: (B, T', D); rot: the RoPE
        `rotations` of the T' * S tokens in "t h w" order; mask: the block-causal mask of a
        causal model; cache: its KV cache and this block's index; text_kv: the context's
        cross-attention keys and values, computed earlier (`CrossAttention.keys_values`).
        Returns x's shape."""
        b, t, s, _ = x_btsd.shape
        # Per-frame modulation, (B, T', 1, D): broadcast over the frame's tokens, not copied.
        mod = self.ada(c_btd)[:, :, None].chunk(self.num_mod, dim=-1)
        shift1, scale1, gate1, shift2, scale2, gate2 = mod[:6]
        y = modulate(self.norm1(x_btsd), shift1, scale1)
        if not self.factorized:
            x_btsd = x_btsd + gate1 * self.attn(y.flatten(1, 2), rot, mask, cache).view_as(y)
        else:
            # Spatial: tokens of one frame attend to each other. Rotations of frame 0 serve
            # every frame: RoPE only sees differences, and within a frame the time difference is 0.
            y = self.attn(y.flatten(0, 1), rot[:s]).view_as(y)
            x_btsd = x_btsd + gate1 * y
            shift_t, scale_t, gate_t = mod[6:]
            y = rearrange(modulate(self.norm_t(x_btsd), shift_t, scale_t), "b t s d -> (b s) t d")
            y = rearrange(self.attn_t(y, rot[::s]), "(b s) t d -> b t s d", b=b)
            x_btsd = x_btsd + gate_t * y
        if self.cross is not None and context is not None:
            y = self.cross(self.norm2(x_btsd).flatten(1, 2), context, context_mask, text_kv)
            x_btsd = x_btsd + y.view_as(x_btsd)
        return x_btsd + gate2 * self.mlp(modulate(self.norm3(x_btsd), shift2, scale2))


class FinalLayer(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        d = cfg.width
        self.norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))
        self.linear = nn.Linear(d, cfg.in_channels * cfg.patch[0] * cfg.patch[1] * cfg.patch[2])

    def forward(self, x_btsd: torch.Tensor, c_btd: torch.Tensor) -> torch.Tensor:
        shift, scale = self.ada(c_btd)[:, :, None].chunk(2, dim=-1)  # (B, T', 1, D) each
        return self.linear(modulate(self.norm(x_btsd), shift, scale))


class VideoDiT(nn.Module):
    kind = "dit"

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.cfg = cfg
        pt, ph, pw = cfg.patch
        self.x_embed = nn.Linear(cfg.in_channels * pt * ph * pw, cfg.width)
        self.t_embed = TimestepEmbedding(cfg.width)
        # Pooled text -> AdaLN condition.
        self.context_embed = nn.Linear(cfg.context_dim, cfg.width) if cfg.context_dim else None
        self.frame_embed = FrameEmbedding(cfg.width) if cfg.frame_embedding else None
        self.place_embed = PlaceEmbedding(cfg.width) if cfg.place_embedding else None
        self.text_refiner = (
            TextRefiner(cfg.context_dim, cfg.text_refiner, cfg.context_dim // REFINER_HEAD_DIM)
            if cfg.text_refiner
            else None
        )
        self.vector_embed = nn.ModuleDict(
            {name: ConditionEmbedding(dim, cfg.width) for name, dim in cfg.vectors}
        )
        self.blocks = nn.ModuleList(DiTBlock(cfg) for _ in range(cfg.depth))
        self.final = FinalLayer(cfg)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        # 1. Transformer linears: Xavier, biases zero (as in DiT).
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        # 2. Timestep MLP: small normal weights.
        for layer in (self.t_embed.mlp[0], self.t_embed.mlp[2]):
            nn.init.normal_(layer.weight, std=0.02)
        # 3. AdaLN-Zero: every modulation starts at zero, so gates are closed and every block
        #    is the identity; the cross-attention output starts at zero for the same reason.
        for block in self.blocks:
            nn.init.zeros_(block.ada[-1].weight)
            nn.init.zeros_(block.ada[-1].bias)
            if block.cross is not None:
                nn.init.zeros_(block.cross.out.weight)
                nn.init.zeros_(block.cross.out.bias)
        # 4. Frame index, place in the frame and condition vectors: start switched off, so
        #    adding one to a trained model changes nothing until training opens it.
        for embed in (self.frame_embed, self.place_embed, *self.vector_embed.values()):
            if embed is not None:
                nn.init.zeros_(embed.mlp[-1].weight)
                nn.init.zeros_(embed.mlp[-1].bias)
        # 5. Text refiner: its branches start at zero, so it passes the encoder's states through.
        if self.text_refiner is not None:
            self.text_refiner.zero_branches()
        # 6. Output layer: zero, so a fresh model predicts zeros.
        nn.init.zeros_(self.final.ada[-1].weight)
        nn.init.zeros_(self.final.ada[-1].bias)
        nn.init.zeros_(self.final.linear.weight)
        nn.init.zeros_(self.final.linear.bias)

    def forward(
        self,
        z_bcthw: torch.Tensor,
        t: torch.Tensor,
        cond: Conditioning | None = None,
        rope_offset: tuple[float, float, float] = (0.0, 0.0, 0.0),
        rope_scale: tuple[float, float, float] = (1.0, 1.0, 1.0),
        times: torch.Tensor | None = None,
        cache: KVCache | None = None,
        write: bool = False,
        branch: Callable[..., list[torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        """z: (B, C, T, H, W) noisy latents; t: noise level per latent frame (B, T), or (B,)
        for one level for all; cond: text tokens and per-frame vectors (None: unconditional).
        times: (T,) the time position of each latent frame, for RoPE and the frame embedding
        (default: 0, 1, 2, ... scaled and offset by rope_scale[0] and rope_offset[0]); a
        keyframe appended after the clip takes the position of the moment it shows.
        cache: a causal model's `KVCache`: z is the next chunk, attending to the cached frames
        (which set its time positions); write: append this chunk's keys and values to it.
        branch: a side branch (a ControlNet), called once with what every block reads
        (tokens (B, T', S, D), conditioning (B, T', D), rotations, text, text mask, attention
        mask); the residuals (B, T', S, D) it returns are added to the outputs of the first
        blocks, one each. Returns a (B, C, T, H, W) prediction."""
        cfg = self.cfg
        cond = cond if cond is not None else Conditioning()
        t = self._check(z_bcthw, t, cond)
        frames = z_bcthw.shape[2]
        device, double = z_bcthw.device, z_bcthw.dtype == torch.float64
        tokens, grid = patchify(z_bcthw, cfg.patch)
        x = self.x_embed(tokens).unflatten(1, (grid[0], -1))  # (B, T', S = H'*W', D)
        if self.place_embed is not None:
            x = x + self.place_embed(grid[1], grid[2], device=device)  # (S, D), every frame
        if cache is not None:
            if not cfg.causal or times is not None or cfg.patch[0] != 1:
                raise InputError("a KV cache needs a causal DiT with temporal patch 1 and no explicit times")
            times = cache.next_positions(frames)  # a streamed chunk goes on where the last stopped
        index = self._frame_index(grid[0], frames, times, rope_offset, rope_scale, device)
        c_btd, context = self._conditioning(cond, t, index, cache)
        given = index if times is not None else None
        rot = self._rotations(cond, grid, given, rope_offset, rope_scale, device, double)
        mask = None
        if cfg.causal:
            past = cache.frames if cache is not None else 0
            mask = block_causal_mask(grid[0], grid[1] * grid[2], past, device)
        if cache is not None:
            cache.begin((grid[1], grid[2]), write, device, double)
        residuals = branch(x, c_btd, rot, context, cond.context_mask, mask) if branch is not None else []
        for i, block in enumerate(self.blocks):
            kv = None
            if block.cross is not None and context is not None:
                kv = self._once(f"cross{i}", cond, cache, lambda b=block: b.cross.keys_values(context))
            x = block(
                x, c_btd, rot, context, cond.context_mask, mask, (cache, i) if cache is not None else None, kv
            )
            if i < len(residuals):
                x = x + residuals[i]
        if cache is not None:
            cache.end(grid[0])
        out = self.final(x, c_btd)  # (B, T', S, C*pt*ph*pw)
        return unpatchify(out.flatten(1, 2), grid, cfg.patch)

    def _check(self, z_bcthw: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """The noise levels as (B, T), after the checks that name a wrong input."""
        if cond.has_frames:
            raise InputError(
                "clean-frame conditions enter through diffusion.frames.with_frames, not the model"
            )
        if cond.control is not None:
            raise InputError("structure maps need a ControlNet (models/controlnet.py); this DiT has none")
        if cond.context is not None and not self.cfg.context_dim:
            raise InputError("this model takes no text (context_dim = 0), but text was given")
        b, c, frames = z_bcthw.shape[:3]
        if c != self.cfg.in_channels:
            raise InputError(f"expected {self.cfg.in_channels} latent channels, got {c}")
        if t.ndim == 1:
            t = t[:, None].expand(b, frames)
        if t.shape != (b, frames):
            raise InputError(f"t must be (B,) or (B, T) = ({b}, {frames}), got {tuple(t.shape)}")
        return t

    def _frame_index(
        self,
        token_frames: int,
        frames: int,
        times: torch.Tensor | None,
        rope_offset: tuple[float, float, float],
        rope_scale: tuple[float, float, float],
        device: torch.device,
    ) -> torch.Tensor:
        """(T',) the time position of each token frame: `times` where given, else 0, 1, 2, ...
        scaled and offset."""
        if times is None:
            return torch.arange(token_frames, device=device) * rope_scale[0] + rope_offset[0]
        if times.shape != (frames,):
            raise InputError(
                f"times must give one position per latent frame ({frames}), got {tuple(times.shape)}"
            )
        return times.to(device, torch.float32)[:: self.cfg.patch[0]]

    def _conditioning(
        self, cond: Conditioning, t: torch.Tensor, index: torch.Tensor, cache: KVCache | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What AdaLN reads, (B, T', D): the noise level (a temporal patch takes its first
        frame's), the pooled text, the frame's time and the named vectors; and the text
        tokens cross-attention reads, through the refiner (once per cache) if there is one."""
        b, frames = t.shape
        c_btd = self.t_embed(t[:, :: self.cfg.patch[0]])
        context, context_mask = cond.context, cond.context_mask
        if context is not None:
            mask_f = context_mask.to(context.dtype)[..., None]
            pooled = (context * mask_f).sum(1) / mask_f.sum(1).clamp_min(1)
            c_btd = c_btd + self.context_embed(pooled)[:, None]
            if self.text_refiner is not None:
                context = self._once(
                    "text", cond, cache, lambda: self.text_refiner(cond.context, context_mask)
                )
        if self.frame_embed is not None:
            c_btd = c_btd + self.frame_embed(index)[None]
        return c_btd + self._vectors(cond, b, frames), context

    def _once(self, key: str, cond: Conditioning, cache: KVCache | None, compute: Callable[[], T]) -> T:
        """compute(): work on the text alone, done once per prompt where it can be kept (a
        stream's cache; a sampling run's `cond.memo`), else on every call. Never while
        gradients flow (a kept tensor would carry a stale graph) or under torch.compile."""
        if cache is not None:
            return cache.memo(key, (cond.context, cond.context_mask), compute)
        if cond.memo is None or torch.is_grad_enabled() or torch.compiler.is_compiling():
            return compute()
        memo_key = (id(self), key)
        if memo_key not in cond.memo:
            cond.memo[memo_key] = compute()
        return cond.memo[memo_key]

    def _rotations(
        self,
        cond: Conditioning,
        grid: tuple[int, int, int],
        index: torch.Tensor | None,
        rope_offset: tuple[float, float, float],
        rope_scale: tuple[float, float, float],
        device: torch.device,
        double: bool,
    ) -> torch.Tensor:
        """The RoPE table of every token: (N, head_dim / 2, 2), or (B, 1, N, ...) when each
        clip's camera moves its positions. `index` (given times) replaces the time axis."""
        cfg = self.cfg
        positions = grid_positions(*grid, offset=rope_offset, scale=rope_scale, device=device)
        if index is not None:
            positions[:, 0] = index.repeat_interleave(grid[1] * grid[2])
        per_clip = cfg.camera_rope and "camera" in cond.vectors
        if not per_clip:
            return rotations(rope_angles(positions, cfg.head_dim, cfg.rope_theta), double)
        camera = cond.vectors["camera"][:, :: cfg.patch[0]]
        positions = world_positions(positions, camera, cond.is_present("camera"), grid, rope_scale)
        rot = rotations(rope_angles(positions.flatten(0, 1), cfg.head_dim, cfg.rope_theta), double)
        return rot.unflatten(0, (len(camera), -1))[:, None]  # (B, 1, N, head_dim / 2, 2)

    def _vectors(self, cond: Conditioning, b: int, frames: int) -> torch.Tensor | float:
        """Sum of the embedded per-frame condition vectors, (B, T', D); absent rows add zero."""
        unknown = set(cond.vectors) - set(self.vector_embed)
        if unknown:
            known = ", ".join(self.vector_embed) or "none"
            raise InputError(f"this model has no condition named {sorted(unknown)}; it takes: {known}")
        total: torch.Tensor | float = 0.0
        for name, embed in self.vector_embed.items():
            if name not in cond.vectors:
                continue
            v = cond.vectors[name]
            if v.shape[:2] != (b, frames) or v.shape[2] != embed.in_dim:
                raise InputError(
                    f"condition {name!r} must be (B, T, dim) = ({b}, {frames}, {embed.in_dim}), got {tuple(v.shape)}"
                )
            e = embed(v[:, :: self.cfg.patch[0]])  # a temporal patch reads its first frame
            total = total + e * cond.is_present(name).to(e.dtype)[:, None, None]
        return total


def block_causal_mask(frames: int, per_frame: int, past_frames: int = 0, device=None) -> torch.Tensor | None:
    """(N, past + N) boolean mask, N = frames * per_frame tokens: True where a token may
    attend, i.e. to every token of its own latent frame and of the frames before it (the
    `past_frames` cached ones included). None when nothing is masked (a single frame)."""
    if frames == 1:
        return None
    frame = torch.arange(frames, device=device).repeat_interleave(per_frame)  # (N,)
    key_frame = torch.cat([torch.full((past_frames * per_frame,), -1, device=device), frame])
    return key_frame[None, :] <= frame[:, None]


def forward_flops(
    cfg: DiTConfig, latent_shape: tuple[int, int, int], context_len: int = 16
) -> dict[str, float]:
    """Multiply-add FLOPs (x2) of one forward pass for latents of (T, H, W), split into the
    dense layers (weights x tokens) and attention scores/values (tokens x tokens)."""
    t, h, w = latent_shape
    context_len = context_len if cfg.context_dim else 0
    pt, ph, pw = cfg.patch
    gt, gs = t // pt, (h // ph) * (w // pw)
    n, d = gt * gs, cfg.width
    hidden = int(d * cfg.mlp_ratio)
    per_block_dense = (
        n * (3 * d * d + d * d + d * d + d * d + 2 * d * hidden) + context_len * 2 * d * cfg.context_dim
    )
    if cfg.attention == "factorized":
        per_block_dense += n * 4 * d * d
        attn = 2 * n * gs * d + 2 * n * gt * d  # QK^T and AV, spatial + temporal
    else:
        attn = 2 * n * n * d
    attn += 2 * n * context_len * d
    patch_in = pt * ph * pw * cfg.in_channels
    dense = cfg.depth * per_block_dense + n * patch_in * d * 2
    attn_all = cfg.depth * attn
    if cfg.text_refiner:  # per layer: qkv + out (4 D^2) and a 2x MLP (4 D^2) per text token
        cd = cfg.context_dim
        dense += cfg.text_refiner * context_len * 8 * cd * cd
        attn_all += cfg.text_refiner * 2 * context_len * context_len * cd
    return {
        "dense": 2.0 * dense,
        "attention": 2.0 * attn_all,
        "total": 2.0 * (dense + attn_all),
    }
