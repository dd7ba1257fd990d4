"""Model files on disk: a directory holding `model.safetensors` and `config.json`.

`config.json` names the kind of model ("vae", "dit", ...), its config dataclass as a dict and
free-form metadata (training step, metrics), and the format version it was written in. No
pickle anywhere: weights are safetensors and everything else is JSON. Writes are atomic (write
to a temporary sibling, then rename), so an interrupted save never leaves a half-written
checkpoint behind.

The models shipped with filmstrip live in `BUNDLED_DIR` (`filmstrip/weights/NAME`); a model
argument is either one of their names or a path (`resolve`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import torch
from safetensors.torch import load_file, save_file

from filmstrip.atomic import atomic_directory, atomic_path, write_text_atomic
from filmstrip.config import from_dict
from filmstrip.errors import InputError

M = TypeVar("M", bound=torch.nn.Module)

# 2: a DiT's config holds "spec" (what sampling needs) apart from "train" (how it was trained);
# format 1 held both in "t2v". Readers accept every version up to this one.
FORMAT_VERSION = 2
BUNDLED_DIR = Path(__file__).resolve().parent / "weights"


class CheckpointError(InputError):
    """A checkpoint path that is missing, incomplete or of the wrong kind."""


def resolve(model: str | Path | None, default: str, relative_to: Path | None = None) -> Path:
    """The directory of a model given by name (a bundled model), by path (a training run's
    folder stands for its `model`), or not at all (`default`, a bundled name). A relative path
    is looked up next to `relative_to` first, so a checkpoint can name the VAE folder stored
    beside it."""
    if model is None:
        return BUNDLED_DIR / default
    ref = Path(model)
    candidates = [BUNDLED_DIR / ref] if ref.parts and len(ref.parts) == 1 else []
    if relative_to is not None and not ref.is_absolute():
        candidates.append(Path(relative_to) / ref)
    candidates.append(ref)
    candidates += [c / "model" for c in candidates]  # a training run's folder stands for its model
    return next((c for c in candidates if (c / "config.json").exists()), ref)


def reference(model: str | Path | None, default: str) -> str:
    """How a checkpoint names a model it depends on (its VAE): a bundled model by its name, so
    the checkpoint works wherever filmstrip is installed, any other by its absolute path."""
    directory = resolve(model, default)
    return directory.name if directory.parent == BUNDLED_DIR else str(directory.resolve())


def write_json_atomic(path: Path, obj: dict) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_tensors_atomic(path: Path, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    with atomic_path(path) as tmp:
        # safetensors wants contiguous tensors that share no storage.
        tensors = {k: v.detach().contiguous().cpu().clone() for k, v in tensors.items()}
        save_file(tensors, str(tmp), metadata=metadata)


def file_sha256(path: Path) -> str:
    """The checksum recorded beside a model's weights, so that damaged weights are caught on
    load instead of generating black frames."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_model(
    directory: str | Path,
    kind: str,
    config: dict,
    state_dict: dict[str, torch.Tensor],
    meta: dict | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write a model directory atomically: built beside the target, then renamed into place.
    `dtype` (e.g. torch.float16) shrinks floating-point weights for shipping."""
    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        weights = {
            k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v)
            for k, v in state_dict.items()
        }
        save_tensors_atomic(tmp / "model.safetensors", weights)
        info = {"kind": kind, "format": FORMAT_VERSION, "config": config, "meta": meta or {}}
        write_json_atomic(tmp / "config.json", {**info, "sha256": file_sha256(tmp / "model.safetensors")})
    return directory


def read_config(directory: str | Path, kind: str | None = None) -> dict:
    """The parsed config.json of a model directory, checked to be of `kind`."""
    directory = Path(directory)
    if not directory.exists():
        bundled = sorted(d.name for d in BUNDLED_DIR.iterdir() if (d / "config.json").exists())
        raise CheckpointError(
            f"{directory}: no such checkpoint (a directory with config.json, or a bundled name: "
            f"{', '.join(bundled)})"
        )
    if directory.is_file():
        if directory.name in ("config.json", "model.safetensors"):
            directory = directory.parent
        else:
            raise CheckpointError(
                f"{directory}: a checkpoint is a directory holding model.safetensors and config.json"
            )
    cfg_path = directory / "config.json"
    if not cfg_path.exists() and (directory / "state.json").exists():
        run = directory.parent.parent
        raise CheckpointError(
            f"{directory}: a training checkpoint, which resumes a run, not a model to load; the run's "
            f"model is {run / 'model'} (written when it finishes or stops)"
        )
    if not cfg_path.exists():
        raise CheckpointError(f"{directory}: not a filmstrip checkpoint (no config.json)")
    try:
        info = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{cfg_path}: unreadable config ({e})") from None
    if not isinstance(info, dict) or not isinstance(info.get("config"), dict):
        raise CheckpointError(f"{cfg_path}: not a filmstrip model config (no 'config' object)")
    version = info.get("format", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{directory}: written in checkpoint format {version}, newer than this filmstrip reads "
            f"({FORMAT_VERSION}); update filmstrip"
        )
    if kind is not None and info.get("kind") != kind:
        raise CheckpointError(
            f"{directory}: this is a {info.get('kind')!r} checkpoint, but a {kind!r} checkpoint is needed"
        )
    return info


def load_model(directory: str | Path, kind: str) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """(config dict, float32 state dict, meta) of a model directory of the given kind."""
    directory = Path(directory)
    info = read_config(directory, kind)
    if directory.is_file():
        directory = directory.parent
    weights = directory / "model.safetensors"
    if not weights.exists():
        raise CheckpointError(f"{directory}: config.json is there but model.safetensors is missing")
    expected = info.get("sha256")
    if expected is not None and file_sha256(weights) != expected:
        raise CheckpointError(
            f"{weights}: damaged (its checksum differs from the one recorded when it was saved); "
            "copy or download it again, or retrain"
        )
    try:
        state = load_file(str(weights))
    except Exception as e:  # safetensors raises its own error types for truncated files
        raise CheckpointError(f"{weights}: unreadable weights ({e})") from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return info["config"], state, info.get("meta", {})


def parse_config(directory: str | Path, cls: type, d: object, where: str = ""):
    """A checkpoint's config section as dataclass `cls`, checked field by field; a bad field is
    a CheckpointError naming the checkpoint and the field."""
    if not isinstance(d, dict):
        raise CheckpointError(
            f"{directory}: the config section {where or cls.__name__!r} is missing or not a table"
        )
    try:
        return from_dict(cls, d, where)
    except InputError as e:
        raise CheckpointError(f"{directory}: {e}") from None


def weights_mismatch(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> str | None:
    """Why `state` does not fit `model` (the first tensor that is missing, extra or of another
    shape), or None when it fits."""
    expected = model.state_dict()
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if wrong:
        k = wrong[0]
        return f"{k} is {tuple(state[k].shape)}, the config makes {tuple(expected[k].shape)}"
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        return f"missing {missing[0]}" if missing else f"unexpected {extra[0]}"
    return None


def _require_fit(directory: str | Path, model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Say in one sentence which tensor does not fit the config (weights of another kind or
    size of model)."""
    what = weights_mismatch(model, state)
    if what is not None:
        raise CheckpointError(
            f"{directory}: the weights do not fit the config ({what}); the folder mixes two models"
        )


@contextlib.contextmanager
def skipped_initialisation() -> Iterator[None]:
    """Inside, torch.nn.init's functions do nothing: modules built here keep whatever memory
    they were given, for weights that are about to be replaced by loaded ones. (The meta
    device would skip the allocation too, but its first use imports torch's compiler stack,
    which costs more than the initialisation it saves.)"""
    names = [n for n in dir(torch.nn.init) if n.endswith("_") and not n.startswith("_")]
    saved = {n: getattr(torch.nn.init, n) for n in names}
    try:
        for n in names:
            setattr(torch.nn.init, n, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for n, fn in saved.items():
            setattr(torch.nn.init, n, fn)


def build_with_weights(directory: str | Path, make: Callable[[], M], state: dict[str, torch.Tensor]) -> M:
    """`make()` with `state` as its weights, without the random initialisation that the
    loaded tensors would overwrite (a third of the bundled pipeline's load time); the loaded
    tensors become the weights as they are, uncopied."""
    with skipped_initialisation():
        model = make()
    _require_fit(directory, model, state)
    model.load_state_dict(state, assign=True)
    return model
