"""`filmstrip info PATH...`: what a model folder, LoRA file, latent cache or training run
holds, read from its headers and records without loading any weights."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click


@click.command("info")
@click.argument("paths", nargs=-1, required=True)
def info_cmd(paths: tuple[str, ...]) -> None:
    """Say what each PATH is and holds: a model (or a bundled model's name), a LoRA file, a
    latent cache, a training run, a prepared data folder or a set of generated videos. For
    videos: `filmstrip data probe`."""
    from filmstrip.errors import InputError

    failed = 0
    for path in paths:
        try:
            lines = describe(path)
        except InputError as e:
            lines, failed = [f"{path}: {e}"], failed + 1
        click.echo("\n".join(lines))
    if failed == len(paths):
        raise SystemExit(1)


def describe(name: str) -> list[str]:
    """Lines about `name`; InputError when it is none of the things filmstrip writes."""
    from filmstrip.checkpoint import BUNDLED_DIR
    from filmstrip.errors import InputError

    path = Path(name)
    if not path.exists() and len(path.parts) == 1 and (BUNDLED_DIR / name).exists():
        path = BUNDLED_DIR / name
    if (path / "checkpoints").is_dir() or (path / "recipe.toml").is_file():
        return _run(path)
    if (path / "lora.safetensors").is_file():
        path = path / "lora.safetensors"
    if path.is_file() and path.suffix == ".safetensors":
        return _lora(path)
    if (path / "config.json").is_file():
        return _model(path)
    if (path / "meta.json").is_file() and any(path.glob("shard_*.safetensors")):
        return _cache(path)
    if (path / "settings.json").is_file() and (path / "captions.jsonl").is_file():
        return _video_set(path)
    if (path / "manifest.jsonl").is_file():
        return _prepared(path)
    if not path.exists():
        raise InputError("no such file or folder (nor a bundled model's name)")
    raise InputError(
        "not a filmstrip model, LoRA, latent cache, run, prepared folder or video set (for a video: "
        "`filmstrip data probe`)"
    )


def _parameters(weights: Path) -> str:
    """Parameter count and stored number format from the safetensors header alone (integer
    tensors, such as a world model's start frames, are data, not parameters)."""
    from safetensors import safe_open

    count, dtypes = 0, set()
    with safe_open(str(weights), "pt") as f:
        for key in f.keys():  # noqa: SIM118 (safe_open has no iterator)
            piece = f.get_slice(key)
            if piece.get_dtype() in ("F16", "BF16", "F32", "F64"):
                count += math.prod(piece.get_shape())
                dtypes.add(piece.get_dtype())
    return f"{count / 1e6:.2f}M parameters ({', '.join(sorted(dtypes))})"


def _clips(n: int) -> str:
    return f"{n} clip{'s' * (n != 1)}"


def _model(path: Path) -> list[str]:
    from filmstrip.checkpoint import read_config

    info = read_config(path)
    kind, cfg, meta = info["kind"], info["config"], info.get("meta", {})
    lines = [f"{path}: a {kind} model, {_parameters(path / 'model.safetensors')}"]
    if kind == "dit":
        d = cfg["dit"]
        extras = [e for e in (
            "causal (streams with a KV cache)" if d.get("causal") else "",
            f"text refiner {d['text_refiner']}" if d.get("text_refiner") else "",
            "conditions " + ", ".join(v for v, _ in d["vectors"]) if d.get("vectors") else "",
        ) if e]  # fmt: skip
        lines.append(f"  DiT width {d['width']}, depth {d['depth']}, heads {d['heads']}, patch {d['patch']}, "
                     f"{d['attention']} attention" + "".join(f"; {e}" for e in extras))  # fmt: skip
        lines.append(f"  latents of the VAE {cfg['spec'].get('vae')}")
    elif kind == "vae":
        channels, tf, sf = cfg["channels"], cfg["temporal_factor"], cfg["spatial_factor"]
        lines.append(
            f"  {tf}x time, {sf}x space, {cfg['latent_channels']} latent channels, widths {channels}"
        )
    elif kind == "world":
        lines.append(
            f"  {cfg['game']}: {cfg['num_actions']} actions, {cfg['size']} px frames, context {cfg['context']}"
        )
    elif kind == "controlnet":
        lines.append(f"  steers a DiT of width {cfg['base']['width']}, depth {cfg['base']['depth']}")
    for key in ("step", "data", "base_model", "shapes"):
        if key in meta:
            value = meta[key]
            if key == "shapes":
                value = ", ".join(f"{t} frames at {w}x{h} ({_clips(n)})" for t, h, w, n in value)
            lines.append(f"  {key.replace('_', ' ')}: {value}")
    return lines


def _lora(path: Path) -> list[str]:
    from filmstrip.models.lora import lora_notes, read_lora

    tensors, settings, base = read_lora(path)
    layers = len({k.rsplit(".lora_", 1)[0] for k in tensors})
    lines = [f"{path}: a LoRA of rank {settings['rank']} (alpha {settings['alpha']}) on {layers} layers, "
             f"{sum(t.numel() for t in tensors.values()) / 1e6:.3f}M parameters"]  # fmt: skip
    lines.append("  for a DiT of " + ", ".join(f"{k} {v}" for k, v in base.items()))
    notes = lora_notes(path)
    for key in ("base_model", "data", "step"):
        if key in notes:
            lines.append(f"  {key.replace('_', ' ')}: {notes[key]}")
    return lines


def _progress(run: Path) -> list[str]:
    """The run's last logged numbers (RUN/log.jsonl) and its newest sample grid."""
    lines = []
    log = run / "log.jsonl"
    rows = [line for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []
    if rows:
        try:
            last = json.loads(rows[-1])
        except json.JSONDecodeError:  # a line cut short by a kill: the one before it
            last = json.loads(rows[-2]) if len(rows) > 1 else {}
        shown = [
            f"{k} {last[k]:.4g}"
            for k in ("loss", "psnr", "grad_norm", "lr")
            if isinstance(last.get(k), float)
        ]
        speed = f", {last['it_s']:.2f} steps/s" if isinstance(last.get("it_s"), float) else ""
        lines.append(f"  last logged, step {last.get('step', '?')}: {', '.join(shown)}{speed}")
    samples = sorted((run / "samples").glob("step_*.mp4")) if (run / "samples").is_dir() else []
    if samples:
        lines.append(f"  newest samples: {samples[-1]}")
    return lines


def _video_set(path: Path) -> list[str]:
    """A folder `filmstrip sample` writes."""
    settings = json.loads((path / "settings.json").read_text())
    planned = len((path / "captions.jsonl").read_text().splitlines())
    made = len(list(path.glob("[0-9]*.mp4")))
    gen = settings.get("generate", {})
    state = "complete" if made >= planned else f"{made} of {planned} made; the same command finishes it"
    return [
        f"{path}: a set of {planned} generated videos ({state})",
        f"  {len(settings.get('prompts', []))} prompts x {settings.get('samples')} sample{'s' * (settings.get('samples') != 1)} from {settings.get('model') or '?'}, "
        f"{gen.get('frames')} frames at {gen.get('width')}x{gen.get('height')}, {gen.get('steps')} steps, text scale {gen.get('text_scale')}",
    ]


def _prepared(path: Path) -> list[str]:
    """A folder `filmstrip data prepare` writes."""
    from collections import Counter

    rows = [json.loads(line) for line in (path / "manifest.jsonl").read_text().splitlines() if line.strip()]
    sizes = Counter(f"{r['width']}x{r['height']}" for r in rows)
    captioned = sum(bool(r.get("caption")) for r in rows)
    sources = len({r["source"] for r in rows})
    return [
        f"{path}: {_clips(len(rows))} prepared from {sources} video{'s' * (sources != 1)}, {captioned} captioned",
        "  at " + ", ".join(f"{size} ({_clips(n)})" for size, n in sizes.most_common()),
        f"  train on it with --data folder:{path / 'clips'}",
    ]


def _cache(path: Path) -> list[str]:
    meta = json.loads((path / "meta.json").read_text())
    shards = len(list(path.glob("shard_*.safetensors")))
    expected = -(-meta["num_clips"] // meta["shard_size"])
    state = "complete" if shards >= expected else f"{shards} of {expected} shards built"
    buckets = len(set(meta.get("groups") or ()))
    groups = f", in {buckets} aspect-ratio bucket{'s' * (buckets != 1)}" if buckets else ""
    vae = meta.get("vae", {})
    return [
        f"{path}: a latent cache of {_clips(meta['num_clips'])}{groups} ({state})",
        f"  of {meta.get('dataset', '?')}",
        f"  through a VAE of {vae.get('temporal_factor', '?')}x time, {vae.get('spatial_factor', '?')}x space",
    ]


def _run(path: Path) -> list[str]:
    from filmstrip.config import load_toml
    from filmstrip.train.trainer import checkpoints

    done = checkpoints(path)
    recipe = load_toml(path / "recipe.toml") if (path / "recipe.toml").is_file() else {}
    target = recipe.get("train", {}).get("steps")
    step = int(done[-1].name.split("_")[1]) if done else 0
    lines = [f"{path}: a training run at step {step}" + (f" of {target}" if target else "")
             + f" ({len(done)} checkpoint{'s' * (len(done) != 1)} kept; an existing run resumes)"]  # fmt: skip
    lines += _progress(path)
    if (path / "model" / "config.json").is_file():
        lines += ["  " + line for line in _model(path / "model")]
    elif (path / "lora.safetensors").is_file():
        lines += ["  " + line for line in _lora(path / "lora.safetensors")]
    if (path / "latents" / "meta.json").is_file():
        lines += ["  " + line for line in _cache(path / "latents")]
    return lines
