"""Attention sharing: one forward of the DiT records every block's attention weights, a later
forward uses them instead of its own.

This is how an edit keeps what it should not change (pipelines/edit.py). Self-attention
weights say which places of the clip read which: sharing them keeps the layout and the motion
(Plug-and-Play, Tumanyan et al., 2023). Cross-attention weights say which places read which
words: sharing them while the words differ only in one attribute ("red" -> "blue") puts the
new word exactly where the old one was bound (Prompt-to-Prompt, Hertz et al., 2022), so a
recolouring cannot land on the wrong object. The values stay the edit's own, which is what
carries the new attribute.

    share = AttentionShare(pipe.dit)
    with share.recording():
        model(x_source, t, source_text)
    with share.replaying(self_attention=True, cross_map=alignment):
        v = model(x, t, edited_text)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from filmstrip.models.attention import CrossAttention, SelfAttention
from filmstrip.models.dit import VideoDiT


def token_alignment(
    source_ids: list[int], target_ids: list[int], source_len: int, target_len: int
) -> torch.Tensor:
    """(target_len, source_len): how each target token's attention is made from the source's.
    Tokens the two prompts share map one to one; a replaced span ("red" -> "cy ##an") shares
    out the weight its source span had, so each place reads the new word as much as it read
    the old one; tokens only one prompt has get none. Lengths are the padded ones."""
    m = torch.zeros(target_len, source_len)
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(
        a=source_ids, b=target_ids, autojunk=False
    ).get_opcodes():
        if op == "equal":
            m[range(j1, j2), range(i1, i2)] = 1.0
        elif op == "replace":
            m[j1:j2, i1:i2] = 1.0 / (j2 - j1)
    return m


def recorded_bytes(dit: VideoDiT, batch: int, tokens: int, text_tokens: int) -> float:
    """Bytes one recording holds: every block's self-attention weights (tokens x tokens) and
    cross-attention weights (tokens x text), every head, float32; for factorised attention,
    which attends within a frame and along time, an upper bound. Quadratic in the tokens, so
    it is what limits the size of a clip an edit can share."""
    cfg = dit.cfg
    per_block = batch * cfg.heads * tokens * (tokens + (text_tokens if cfg.context_dim else 0))
    return float(cfg.depth * per_block * 4)


class AttentionShare:
    """Records and replays the attention weights of a DiT's blocks (not its text refiner)."""

    def __init__(self, dit: VideoDiT):
        self.layers: list[tuple[str, SelfAttention | CrossAttention]] = []
        for i, block in enumerate(dit.blocks):
            self.layers.append((f"self{i}", block.attn))
            if block.attn_t is not None:  # factorised: the temporal attention is self-attention too
                self.layers.append((f"self_t{i}", block.attn_t))
            if block.cross is not None:
                self.layers.append((f"cross{i}", block.cross))
        self.stored: dict[str, torch.Tensor] = {}

    @contextmanager
    def _hooked(self, hooks: dict[str, object]) -> Iterator[None]:
        try:
            for name, layer in self.layers:
                layer.weights_hook = hooks.get(name)
            yield
        finally:
            for _, layer in self.layers:
                layer.weights_hook = None

    @contextmanager
    def recording(self) -> Iterator[None]:
        """Within: every forward stores its weights (the last forward's are kept)."""
        self.stored = {}

        def store(name: str):
            def hook(w: torch.Tensor) -> torch.Tensor:
                self.stored[name] = w
                return w

            return hook

        with self._hooked({name: store(name) for name, _ in self.layers}):
            yield

    @contextmanager
    def replaying(self, self_attention: bool, cross_map: torch.Tensor | None = None) -> Iterator[None]:
        """Within: forwards use the recorded self-attention weights (if `self_attention`) and
        cross-attention weights carried over to their own words by `cross_map` (B, L_target,
        L_source) rows of `token_alignment` (None: their own). The forward's batch must be the
        recorded one's."""
        hooks: dict[str, object] = {}
        for name, _ in self.layers:
            if name.startswith("self") and self_attention:
                hooks[name] = self._replace(name)
            elif name.startswith("cross") and cross_map is not None:
                hooks[name] = self._replace(name, cross_map)
        with self._hooked(hooks):
            yield

    def _replace(self, name: str, cross_map: torch.Tensor | None = None):
        def hook(w: torch.Tensor) -> torch.Tensor:
            stored = self.stored[name]
            if stored.shape[:3] != w.shape[:3]:
                raise ValueError(
                    f"{name}: recorded weights {tuple(stored.shape)} do not fit {tuple(w.shape)}"
                )
            if cross_map is None:
                return stored.to(w.dtype)
            # (B, heads, N, L_source) @ (B, 1, L_source, L_target)
            return (stored.float() @ cross_map.transpose(1, 2)[:, None].to(w.device)).to(w.dtype)

        return hook
