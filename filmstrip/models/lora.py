"""Low-rank adapters (LoRA, Hu et al. 2021) on the video DiT, through Hugging Face `peft`.

A LoRA adds `scale * (alpha / rank) * B A x` to a frozen linear layer W x, with A (rank, in)
random and B (out, rank) zero at the start, so a new adapter is an exact no-op. It goes on
the projections of every block's self-attention (qkv, out), cross-attention (q, kv, out) and
MLP; that is where a new concept lives (a word's meaning in cross.kv, its look in the rest).

peft does the layers: injection into a plain nn.Module, several named adapters active at
once each with its own scale, and merging into the base weights. What this module adds is
the file: one safetensors holding the adapter's A and B matrices under the names diffusers
uses (`transformer.<module>.lora_A.weight`), with its settings and the shape of the DiT it
was trained on in the file's metadata, so a LoRA for another model is refused in one
sentence instead of a size mismatch from deep inside.

    add_lora(dit, LoRAConfig(rank=8))            # train: only the adapters need gradients
    save_lora("star.safetensors", dit)
    load_lora(dit, "star.safetensors", scale=0.8, name="star")
    merge_loras(dit)                             # fold the active adapters into the weights

peft imports in about 4 s (it imports transformers), so it is imported on first use, and
`LoRAConfig` costs nothing to import.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from filmstrip.checkpoint import BUNDLED_DIR, CheckpointError, save_tensors_atomic
from filmstrip.config import check_types
from filmstrip.errors import InputError

# Every block's attention and MLP projections (not the AdaLN modulation, the embeddings or
# the text refiner).
TARGETS = r"blocks\.\d+\.(attn\.(qkv|out)|cross\.(q|kv|out)|mlp\.(0|2))"
PREFIX = "transformer."  # diffusers' prefix for a DiT's LoRA keys
FORMAT = "filmstrip-lora/1"
# The DiT settings that decide every adapted layer's shape: a LoRA fits a model equal in these.
SHAPE_FIELDS = ("width", "depth", "heads", "mlp_ratio", "context_dim", "attention")


@dataclass(frozen=True)
class LoRAConfig:
    rank: int = 8
    alpha: float | None = None  # None: alpha = rank, so the update is B A x at scale 1
    dropout: float = 0.0
    targets: str = TARGETS  # regular expression over module names, matched in full

    def __post_init__(self):
        check_types(self, "lora")
        if self.rank < 1:
            raise InputError(f"the LoRA rank must be at least 1, got {self.rank}")
        if self.alpha is not None and not self.alpha > 0:
            raise InputError(f"the LoRA alpha must be positive, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"the LoRA dropout is a probability below 1, got {self.dropout}")
        try:
            re.compile(self.targets)
        except re.error as e:
            raise InputError(
                f"the LoRA targets are not a regular expression ({e}): {self.targets!r}"
            ) from None


def _peft_config(cfg: LoRAConfig):
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha if cfg.alpha is not None else cfg.rank,
        lora_dropout=cfg.dropout,
        target_modules=cfg.targets,
    )


def _is_lora(module: nn.Module) -> bool:
    from peft.tuners.lora import LoraLayer

    return isinstance(module, LoraLayer)


def lora_layers(model: nn.Module) -> list:
    """peft's LoRA layers in `model` (peft.tuners.lora.LoraLayer)."""
    return [m for m in model.modules() if _is_lora(m)]


def adapter_names(model: nn.Module) -> list[str]:
    """The adapters added to `model`, in the order they were added."""
    layers = lora_layers(model)
    return list(layers[0].lora_A) if layers else []


def add_lora(model: nn.Module, cfg: LoRAConfig, name: str = "default") -> nn.Module:
    """Add a fresh adapter `name` (a no-op until trained) to every target layer of `model`,
    in place; only adapter parameters then require gradients. Returns `model`."""
    if name in adapter_names(model):
        raise InputError(f"the model already has a LoRA named {name!r}")
    linear = (n for n, m in model.named_modules() if isinstance(m, nn.Linear) or _is_lora(m))
    if not any(re.fullmatch(cfg.targets, n) for n in linear):
        raise InputError(f"no linear layer of this model matches the LoRA targets {cfg.targets!r}")
    from peft import inject_adapter_in_model

    with warnings.catch_warnings():  # peft warns on a second adapter: several are the point here
        warnings.filterwarnings("ignore", message="Already found a `peft_config`")
        inject_adapter_in_model(_peft_config(cfg), model, adapter_name=name)
    for param_name, p in model.named_parameters():
        p.requires_grad_(".lora_" in param_name and f".{name}." in param_name)
    _activate(model, [*adapter_names(model)])
    return model


def _activate(model: nn.Module, names: list[str]) -> None:
    for layer in lora_layers(model):
        layer.set_adapter(names)
    # set_adapter marks the active adapters trainable; keep the base frozen either way.
    for param_name, p in model.named_parameters():
        if ".lora_" not in param_name:
            p.requires_grad_(False)


def set_scales(model: nn.Module, scales: dict[str, float]) -> None:
    """Activate exactly the adapters in `scales`, each at its scale (0 switches one off)."""
    known = adapter_names(model)
    unknown = set(scales) - set(known)
    if unknown:
        raise InputError(f"no LoRA named {sorted(unknown)}; this model has {known or 'none'}")
    _activate(model, list(scales))
    for layer in lora_layers(model):
        for name, scale in scales.items():
            layer.set_scale(name, scale)


def lora_state(model: nn.Module, name: str = "default") -> dict[str, torch.Tensor]:
    """Adapter `name`'s A and B matrices under diffusers' key names."""
    if name not in adapter_names(model):
        raise InputError(f"no LoRA named {name!r} on this model")
    from peft import get_peft_model_state_dict

    state = get_peft_model_state_dict(model, adapter_name=name)
    return {PREFIX + k: v.detach().cpu().contiguous() for k, v in state.items()}


def save_lora(
    path: str | Path,
    model: nn.Module,
    name: str = "default",
    base: dict | None = None,
    notes: dict | None = None,
) -> Path:
    """Write adapter `name` as one safetensors file (atomically), its settings and the DiT's
    shape (`base`: the DiT config as a dict, or from `model.cfg`) in the file's metadata, and
    `notes` (where it came from: its data, its base model) beside them."""
    layer = next((m for m in lora_layers(model) if name in m.lora_A), None)
    if layer is None:
        raise InputError(f"no LoRA named {name!r} on this model")
    base = base if base is not None else asdict(model.cfg)
    settings = {
        "rank": layer.r[name],
        "alpha": layer.lora_alpha[name],
        "targets": _targets_of(model, name),
    }
    meta = {
        "format": FORMAT,
        "lora": json.dumps(settings),
        "base": json.dumps({k: base[k] for k in SHAPE_FIELDS if k in base}),
        **({"notes": json.dumps(notes)} if notes else {}),
    }
    save_tensors_atomic(Path(path), lora_state(model, name), metadata=meta)
    return Path(path)


def _targets_of(model: nn.Module, name: str) -> str:
    """The targets as saved: the exact module names, so a file names what it adapts."""
    names = [n for n, m in model.named_modules() if _is_lora(m) and name in m.lora_A]
    return "(" + "|".join(re.escape(n) for n in names) + ")"


def read_lora(path: str | Path) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """(tensors, settings, base shape) of a LoRA file (or a folder holding `lora.safetensors`,
    or a shipped one by name), or one sentence on why it is not one."""
    path = Path(path)
    if not path.exists() and len(path.parts) == 1 and (BUNDLED_DIR / path).is_dir():
        path = BUNDLED_DIR / path  # a shipped LoRA, by name
    if path.is_dir():
        path = path / "lora.safetensors"
    if not path.is_file():
        raise InputError(
            f"{path}: no such LoRA file; give a .safetensors file written by `filmstrip train lora`"
        )
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a filmstrip LoRA (no {FORMAT!r} metadata); LoRAs are written by `filmstrip train lora`"
        )
    return tensors, json.loads(meta["lora"]), json.loads(meta["base"])


def lora_notes(path: str | Path) -> dict:
    """Where a LoRA file came from (its data, its base model), as `save_lora` recorded it."""
    path = Path(path)
    if not path.exists() and len(path.parts) == 1:
        path = BUNDLED_DIR / path
    path = path / "lora.safetensors" if path.is_dir() else path
    with safe_open(str(path), "pt") as f:
        return json.loads((f.metadata() or {}).get("notes", "{}"))


def load_lora(model: nn.Module, path: str | Path, scale: float = 1.0, name: str | None = None) -> str:
    """Add the LoRA in `path` to `model` as adapter `name` (default: the file's stem) at
    `scale`, next to any already there; all of them stay active. Returns the name."""
    tensors, settings, base = read_lora(path)
    name = name or Path(path).stem
    mine = asdict(model.cfg)
    differ = [f"{k} {base[k]} (this model: {mine.get(k)})" for k in base if base[k] != mine.get(k)]
    if differ:
        trained_on = lora_notes(path).get("base_model")
        raise InputError(
            f"{path}: this LoRA was trained for another model shape ({', '.join(differ)}); "
            f"use it with the model it was trained on{f': -c {trained_on}' if trained_on else ''}"
        )
    add_lora(
        model, LoRAConfig(rank=settings["rank"], alpha=settings["alpha"], targets=settings["targets"]), name
    )
    from peft import set_peft_model_state_dict

    state = {k.removeprefix(PREFIX): v for k, v in tensors.items()}
    result = set_peft_model_state_dict(model, state, adapter_name=name)
    missing = [k for k in result.missing_keys if ".lora_" in k and f".{name}." in k]
    if missing:
        raise CheckpointError(f"{path}: the LoRA file lacks {len(missing)} of its layers (e.g. {missing[0]})")
    scales = {n: _scale_of(model, n) for n in adapter_names(model)}
    set_scales(model, {**scales, name: scale})
    model.requires_grad_(False)
    return name


def _scale_of(model: nn.Module, name: str) -> float:
    """The user scale adapter `name` is at (peft keeps scale * alpha / rank)."""
    layer = next(m for m in lora_layers(model) if name in m.lora_A)
    if name not in layer.active_adapters:
        return 0.0
    return layer.scaling[name] * layer.r[name] / layer.lora_alpha[name]


def apply_loras(model: nn.Module, items: list[tuple[str | Path, float]], merge: bool = False) -> list[str]:
    """Load several LoRA files at their scales (names: the file stems, numbered when two
    share one), optionally merged into the weights. Returns the adapter names."""
    names = []
    for k, (path, scale) in enumerate(items):
        stem = Path(path).stem if Path(path).suffix == ".safetensors" else Path(path).name
        name = stem if stem not in names else f"{stem}_{k}"
        names.append(load_lora(model, path, scale, name))
    if merge and names:
        merge_loras(model)
    return names


def parse_lora_arg(value: str) -> tuple[str, float]:
    """'file.safetensors:0.8' -> ('file.safetensors', 0.8); without a scale, 1."""
    path, sep, scale = value.rpartition(":")
    if sep:
        try:
            return path, float(scale)
        except ValueError:
            # A colon may belong to the file's name; but where the part before it names a
            # LoRA, what follows was meant as its scale.
            if Path(path).exists() or (len(Path(path).parts) == 1 and (BUNDLED_DIR / path).is_dir()):
                raise InputError(f"{value}: the scale after ':' must be a number, e.g. {path}:0.8") from None
    return value, 1.0


@torch.no_grad()
def merge_loras(model: nn.Module) -> nn.Module:
    """Fold the active adapters, at their scales, into the base weights and take the LoRA
    layers out: the model is a plain DiT again, as fast as one. Returns `model`."""
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if _is_lora(child):
                child.merge(adapter_names=list(child.active_adapters))
                setattr(parent, child_name, child.get_base_layer())
    return model
