"""Training runs as data: a recipe (nested frozen dataclasses) and the function that runs it.

    from filmstrip.train.recipes import T2VRecipe, train_t2v
    train_t2v(T2VRecipe(run="runs/t2v"))                    # the bundled model's first stage

The CLI builds the same recipes from a TOML file (`--config`), its options and `--set a.b=v`
overrides (cli/recipe_options.py); `recipes/` holds the files that reproduce the bundled
models stage by stage. Each run writes its resolved recipe to RUN/recipe.toml.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch.utils.data import Dataset

from filmstrip.atomic import write_text_atomic
from filmstrip.checkpoint import load_model, parse_config, reference, resolve
from filmstrip.config import load_toml, to_dict, to_toml
from filmstrip.data import ShapesConfig, ShapesDataset, build_dataset, collate_clips
from filmstrip.data.crop import RandomCropDataset
from filmstrip.data.join import JoinedDataset, Resampled, item_groups
from filmstrip.data.latents import LatentDataset, build_latent_cache, collate_latents, vae_config_dict
from filmstrip.data.mirror import Mirrored
from filmstrip.data.shapes import DEFAULT_HELD_OUT
from filmstrip.diffusion.flow import FlowConfig
from filmstrip.diffusion.spec import ModelSpec
from filmstrip.errors import FilmstripWarning, InputError
from filmstrip.models.controlnet import ControlNetConfig
from filmstrip.models.dit import DiTConfig, VideoDiT
from filmstrip.models.lora import LoRAConfig
from filmstrip.models.vae import VAEConfig, VideoVAE, load_vae
from filmstrip.models.vae import preset as vae_preset
from filmstrip.pipelines.generate import GenerateConfig
from filmstrip.text.encoder import TextEncoder
from filmstrip.train.t2v_task import Preview, T2VConfig, T2VTask
from filmstrip.train.trainer import TrainConfig, Trainer, default_device, init_distributed
from filmstrip.train.vae_task import VAELossConfig, VAETask

Log = Callable[[str], None]


@dataclass(frozen=True)
class ClipData:
    """Which clips a run trains on."""

    source: str = "shapes"  # shapes, digits or folder:PATH
    clips: int = 20_000  # t2v: clips encoded into the latent cache
    frames: int = 17
    size: int = 64  # frame height and width (the bucket area for folders)
    fps: float | None = None  # None: 8 for the built-in sets, each video's own rate for folders
    # shapes only: (colour, shape, direction) never shown in training ("*" matches any).
    held_out: tuple[str, ...] = tuple(",".join(c) for c in DEFAULT_HELD_OUT)
    start_words: float = 0.0  # shapes only: chance that a caption says where an object starts
    objects: str = "1-3"  # shapes only: objects per clip, N or MIN-MAX
    speed: str = ""  # shapes only: MIN-MAX object speed in frame widths per second [0.1-0.25]
    camera: float = 0.0  # shapes only: share of clips filmed by a panning, zooming camera
    # Each clip also flipped left to right, its caption's "left" and "right" swapped
    # (data/mirror.py): doubles a small set; the cache then holds 2 x clips.
    mirror: bool = False

    @property
    def cached(self) -> int:
        """Items the latent cache holds: the clips, and their mirrors."""
        return self.clips * (2 if self.mirror else 1)

    def __post_init__(self):
        for name, low in (("clips", 1), ("frames", 1), ("size", 16)):
            if getattr(self, name) < low:
                raise InputError(f"data.{name} must be at least {low}, got {getattr(self, name)}")
        if self.fps is not None and not (math.isfinite(self.fps) and self.fps > 0):
            raise InputError(f"data.fps must be a positive number, got {self.fps}")


@dataclass(frozen=True)
class T2VRecipe:
    run: str = ""  # run folder: checkpoints, log, samples, model/
    data: ClipData = field(default_factory=ClipData)
    cache: str | None = None  # latent cache folder [RUN/latents]
    extra_caches: tuple[str, ...] = ()  # further built caches (same VAE, same clip size)
    vae: str | None = None  # the autoencoder of the latent space [the bundled 3D VAE]
    # Start from this DiT; its architecture replaces `dit`, except that the optional parts
    # switched on in `dit` (frame/place embedding, text refiner layers) are added as no-ops.
    init: str | None = None
    dit: DiTConfig = field(default_factory=DiTConfig)  # in_channels: from the VAE
    flow: FlowConfig = field(default_factory=FlowConfig)
    task: T2VConfig = field(default_factory=T2VConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=9000, batch_size=32, lr=3e-4, warmup=300, num_workers=0, sample_every=1000
        )
    )


@dataclass(frozen=True)
class LoRARecipe:
    """A LoRA on a trained text-to-video DiT: a new concept from a few dozen captioned clips."""

    run: str = ""
    data: ClipData = field(default_factory=lambda: ClipData(clips=64))
    base: str | None = None  # the DiT to adapt [the bundled text-to-video model]
    cache: str | None = None  # latent cache folder [RUN/latents]
    # Prior preservation: a latent cache of the base model's own kind of clips, drawn afresh
    # each epoch beside the new ones, so the adapter learns the concept and not the few
    # clips' other habits (their motions, their captions). prior_share: its share of batches.
    prior: str | None = None
    prior_share: float = 0.5
    # Timestep shift of the adapter's training noise levels (sampling keeps the base model's).
    # The bundled model trained at 4.5, which puts 7% of samples below t = 0.5, where a new
    # shape's outline is drawn (a star is about one 2x2-patch token wide); at 2 the star LoRA
    # learned 10 points more in the same steps (docs/RESULTS.md, session 29).
    shift: float = 2.0
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    task: T2VConfig = field(default_factory=lambda: T2VConfig(frame_noise=0.5))
    # lr 3e-3: a rank-8 adapter learned the star 3x faster than at 1e-3, and no faster at 1e-2
    # (docs/RESULTS.md, session 28).
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=600, batch_size=16, lr=3e-3, warmup=50, num_workers=0, sample_every=0, ema_decay=0.99
        )
    )

    def __post_init__(self):
        if not 0.0 < self.prior_share < 1.0:
            raise InputError(f"prior_share must be in (0, 1), got {self.prior_share}")
        if not (math.isfinite(self.shift) and self.shift > 0):
            raise InputError(f"shift must be a positive number, got {self.shift}")


@dataclass(frozen=True)
class ControlRecipe:
    """A ControlNet on a trained text-to-video DiT, taught object masks of `shapes` clips."""

    run: str = ""
    data: ClipData = field(default_factory=lambda: ClipData(clips=8192))
    base: str | None = None  # the DiT to control [the bundled text-to-video model]
    # A trained branch to go on training (its own shape; [controlnet] then must match it)
    # [a fresh one: copies of the base's first blocks, zero-initialised in and out].
    init: str | None = None
    cache: str | None = None  # latent cache folder [RUN/latents]; a built `shapes` cache serves
    controlnet: ControlNetConfig = field(default_factory=ControlNetConfig)
    task: T2VConfig = field(default_factory=lambda: T2VConfig(frame_noise=0.5))
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=3000, batch_size=32, lr=2e-4, warmup=100, num_workers=1, sample_every=0
        )
    )


@dataclass(frozen=True)
class VAERecipe:
    run: str = ""
    data: tuple[str, ...] = ("shapes", "digits")  # repeat a source to weight it
    preset: str = "vae3d"
    # Shape a new model (None: the preset's); a model given with `init` keeps its own.
    channels: tuple[int, ...] | None = None
    temporal_factor: int | None = None
    latent_channels: int | None = None
    time_upsample: str | None = None  # "repeat" or "learned" [the preset's, or init's]
    norm: str | None = None  # "group" or "pixel" (tiles exactly; models/tiling.py) [the preset's]
    init: str | None = None
    freeze_encoder: bool = False  # train the decoder only (keeps the latent space)
    frames: int = 17
    size: int = 64
    crop: int | None = None  # random square crops of this size (mixed aspect ratios)
    fps: float | None = None
    loss: VAELossConfig = field(default_factory=VAELossConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=3000, batch_size=8, lr=5e-4, warmup=200, num_workers=1, sample_every=500
        )
    )


def parse_held_out(values: tuple[str, ...]) -> tuple[tuple[str, str, str], ...]:
    combos = []
    for v in values:
        parts = tuple(p.strip() for p in v.split(","))
        if len(parts) != 3:
            raise InputError(f"a held-out combination is 'colour,shape,direction' (* for any), got {v!r}")
        combos.append(parts)
    return tuple(combos)


def parse_speed(value: str) -> tuple[float, float] | None:
    """'0.02-0.5' -> (0.02, 0.5); '' -> None (the dataset's default)."""
    if not value:
        return None
    try:
        low, _, high = value.partition("-")
        bounds = float(low), float(high or low)
    except ValueError:
        raise InputError(f"speed is MIN-MAX in frame widths per second, got {value!r}") from None
    if not (math.isfinite(bounds[1]) and 0 <= bounds[0] <= bounds[1]):
        raise InputError(f"speed needs 0 <= MIN <= MAX, got {value!r}")
    return bounds


def parse_objects(value: str) -> tuple[int, int]:
    """'3' -> (3, 3); '2-3' -> (2, 3)."""
    try:
        low, _, high = value.partition("-")
        bounds = int(low), int(high or low)
    except ValueError:
        raise InputError(f"objects is N or MIN-MAX, got {value!r}") from None
    if not 1 <= bounds[0] <= bounds[1]:
        raise InputError(f"objects needs 1 <= MIN <= MAX, got {value!r}")
    return bounds


def load_init(model: torch.nn.Module, state: dict, source, may_be_new: tuple[str, ...] = ()) -> None:
    """Load `init` weights into `model`. Only parameters whose names contain one of
    `may_be_new` may be missing: parts added to a trained model that start as no-ops."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not any(part in k for part in may_be_new) for k in missing):
        raise InputError(f"{source} does not fit this model: missing {missing}, unexpected {unexpected}")


def _record(run: Path, recipe, resumed_at: int | None = None) -> None:
    """The resolved recipe beside the run's checkpoints, so a run says how it was made. A run
    resumed with other settings says which, and keeps the recipe its first steps were made
    with as recipe.until_step_N.toml."""
    run.mkdir(parents=True, exist_ok=True)
    path, settings = run / "recipe.toml", to_dict(recipe)
    if resumed_at is not None and path.exists():
        before = _flat(load_toml(path))
        changed = [
            f"{k} {before.get(k)!r} -> {v!r}" for k, v in _flat(settings).items() if before.get(k) != v
        ]
        if changed:
            kept = run / f"recipe.until_step_{resumed_at:07d}.toml"
            if not kept.exists():  # else the steps up to here were made with the one kept there
                path.replace(kept)
            warnings.warn(
                f"{run}: resuming at step {resumed_at} with settings other than the run began with "
                f"({'; '.join(changed)}); the earlier recipe is kept as {kept.name}",
                FilmstripWarning,
                stacklevel=3,
            )
    write_text_atomic(path, to_toml(settings))


def _flat(d: dict, prefix: str = "") -> dict:
    """{"train": {"lr": 1e-4}} -> {"train.lr": 1e-4}, lists as tuples (as TOML reads them back)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = tuple(v) if isinstance(v, list) else v
    return out


def fit_recipe(recipe, task, dataset: Dataset, collate, log: Log, what: str, detail: str) -> Path:
    """Resume the run if it exists, record the recipe in the run folder, train; RUN/model."""
    run = Path(recipe.run)
    trainer = Trainer(recipe.train, task, dataset, run, collate=collate)
    resumed = trainer.resume()
    if trainer.ddp.is_main:  # one writer of the run's record
        _record(run, recipe, trainer.step if resumed else None)
    if resumed:
        log(f"resuming {run} from step {trainer.step}")
    n_params = sum(p.numel() for p in task.model.parameters())
    log(f"{what}: {n_params / 1e6:.2f}M parameters; {detail}")
    trainer.fit()
    return run / "model"


# ---- text to video ---------------------------------------------------------------------
def _warn_uncaptioned(dataset: Dataset, source: str) -> None:
    """A text-to-video model learns a video with no caption as it learns a dropped caption:
    say so when a folder has such videos, before hours go into them."""
    items = getattr(dataset, "items", None)
    if not items or not hasattr(items[0], "caption"):
        return
    bare = [item.path.name for item in items if not item.caption.strip()]
    if bare:
        warnings.warn(
            f"{source}: {len(bare)} of {len(items)} videos have no caption (e.g. {bare[0]}): the model "
            "learns them without text; give each a clip.txt beside clip.mp4 or a line in captions.jsonl",
            FilmstripWarning,
            stacklevel=3,
        )


def warn_toy_vae(source: str, vae: str | None) -> None:
    """Real footage through an autoencoder that learned only `shapes` and `digits` loses most of
    its detail before the DiT sees it: say so, with the one made for it."""
    name = reference(vae, "vae3d")
    if source.startswith(("folder:", "photos:")) and name in ("vae3d", "vae2d"):
        warnings.warn(
            f"{source}: encoded by {name}, which learned shapes and digits only (13.5 dB on held-out real "
            "clips, where vae_natural reaches 22.2); for natural footage give --vae vae_natural",
            FilmstripWarning,
            stacklevel=3,
        )


def t2v_dataset(data: ClipData, seed: int) -> tuple[Dataset, str]:
    """The clips to encode, and a description recorded with the cache and the model."""
    combos = parse_held_out(data.held_out) if data.source == "shapes" else ()
    objects = parse_objects(data.objects)
    speed = parse_speed(data.speed)
    if data.source != "shapes" and (objects != (1, 3) or speed or data.camera):
        raise InputError("objects, speed and camera apply to shapes only")
    if data.source == "shapes":
        dataset = ShapesDataset(
            ShapesConfig(
                num_frames=data.frames,
                height=data.size,
                width=data.size,
                fps=data.fps or 8.0,
                seed=seed,
                held_out=combos,
                num_clips=data.clips,
                start_words=data.start_words,
                min_objects=objects[0],
                max_objects=objects[1],
                camera=data.camera,
                **({"speed": speed} if speed else {}),
            )
        )
    else:
        dataset = build_dataset(
            data.source,
            num_frames=data.frames,
            height=data.size,
            width=data.size,
            fps=data.fps,
            seed=seed,
            clips_per_video=max(1, data.clips // 100),
        )
        _warn_uncaptioned(dataset, data.source)
    description = f"{data.source} {data.frames}x{data.size}x{data.size} held_out={combos}"
    if data.mirror:
        dataset, description = Mirrored(dataset), f"{description} mirrored"
    if data.source == "shapes" and data.start_words:
        description += f" start_words={data.start_words}"
    if objects != (1, 3):
        description += f" objects={objects[0]}-{objects[1]}"
    if speed:
        description += f" speed={speed[0]:g}-{speed[1]:g}"
    if data.camera:
        description += f" camera={data.camera:g}"
    return dataset, description


def join_caches(first: LatentDataset, others: list[LatentDataset]) -> Dataset:
    """One dataset over several latent caches: same VAE, same clip size."""
    for other in others:
        if vae_config_dict(first.meta["vae"], VAEConfig) != vae_config_dict(other.meta["vae"], VAEConfig):
            raise InputError(f"{other.root} was encoded by another VAE than {first.root}")
        if other[0]["latents"].shape != first[0]["latents"].shape:
            raise InputError(
                f"{other.root} holds latents of shape {tuple(other[0]['latents'].shape)}, "
                f"{first.root} of {tuple(first[0]['latents'].shape)}: clips must be the same size"
            )
    return JoinedDataset([first, *others])


def t2v_model_config(recipe: T2VRecipe, vae: VideoVAE) -> tuple[DiTConfig, dict | None]:
    """The DiT's config, and the `init` weights when fine-tuning."""
    dit = replace(recipe.dit, in_channels=vae.cfg.z_channels)
    if not recipe.init:
        return dit, None
    config, state, _ = load_model(resolve(recipe.init, "t2v"), VideoDiT.kind)
    base = parse_config(recipe.init, DiTConfig, config.get("dit"), "dit")
    causal = base.causal or dit.causal
    if causal and not base.causal:
        # A causal model streams past its training length, where an absolute frame index
        # means nothing it has learned: it keeps RoPE's relative time only.
        state = {k: v for k, v in state.items() if not k.startswith("frame_embed.")}
    return (
        replace(
            base,
            frame_embedding=(base.frame_embedding or dit.frame_embedding) and not causal,
            place_embedding=base.place_embedding or dit.place_embedding,
            text_refiner=max(base.text_refiner, dit.text_refiner),
            causal=causal,
            vectors=base.vectors + tuple(v for v in dit.vectors if v[0] not in dict(base.vectors)),
            camera_rope=base.camera_rope or dit.camera_rope,
        ),
        state,
    )


def _check_patchable(data: ClipData, spatial_factor: int, patch: tuple[int, int, int]) -> None:
    """A frame size the DiT cannot patch, said before the cache (which can take many minutes)
    rather than at the first step. Folders are bucketed clip by clip, so not checked here."""
    size, step = data.size, spatial_factor * math.lcm(patch[1], patch[2])
    if not data.source.startswith("folder:") and size % step:
        raise InputError(
            f"--size {size} (data.size): frames are encoded at 1/{spatial_factor}, cut into {patch[1]}x{patch[2]} "
            f"patches, so the size must be a multiple of {step} (e.g. {max(step, size // step * step)})"
        )


def trained_shapes(latents: Dataset, vae: VideoVAE, latent_frames: int = 0) -> list[list[int]]:
    """[frames, height, width, clips] of each clip shape in a latent set (a folder's aspect-ratio
    buckets), most clips first: recorded with the model, so that sampling can make by default
    what it was trained on and say when asked for something else. One clip read per group."""
    groups = item_groups(latents) or [()] * len(latents)
    first: dict = {}
    for i, g in enumerate(groups):
        first.setdefault(g, i)
    per_group = Counter(groups)
    clips: Counter = Counter()
    for g, i in first.items():
        _, t, h, w = latents[i]["latents"].shape
        t = min(t, latent_frames) if latent_frames else t
        clips[(vae.pixel_frames(t), h * vae.cfg.spatial_factor, w * vae.cfg.spatial_factor)] += per_group[g]
    return [[*shape, n] for shape, n in clips.most_common()]


def with_focus(latents: Dataset, task: T2VConfig, vae_cfg: VAEConfig, cache: Path) -> Dataset:
    """The cached clips with the focus that `task.focus_weight` weighs: every object from the
    truths of `shapes` clips (`task.focus = "objects"`), else the cache's own masks, if any."""
    if task.focus == "objects":
        from filmstrip.data.structure import WithObjectFocus

        latents = WithObjectFocus(latents, vae_cfg.temporal_factor, vae_cfg.spatial_factor)
        latents[0]  # clips without a truth are refused here, not at the first step
    elif task.focus_weight != 1.0 and "focus" not in latents[0]:
        warnings.warn(
            f"task.focus_weight is {task.focus_weight:g} but the clips of {cache} have no focus masks "
            '(clip.mask.mp4, written by `data export --focus`; or task.focus = "objects" for shapes '
            "clips): every pixel weighs alike",
            FilmstripWarning,
            stacklevel=3,
        )
    return latents


def train_t2v(recipe: T2VRecipe, log: Log = print) -> Path:
    """Build (or reuse) the latent cache and train a text-to-video DiT; returns RUN/model.
    With `train.steps == 0` only the cache is built (several can be built in parallel)."""
    if not recipe.run:
        raise InputError("a training run needs a run folder (run = ...)")
    run, train_cfg = Path(recipe.run), recipe.train
    # 1. The frozen encoders run where the DiT trains: on a GPU the cache builds in a minute.
    device = default_device(init_distributed())
    vae = load_vae(recipe.vae, device)
    text = TextEncoder(device)
    # 2. Encode the clips once (resumable), and join any further caches.
    model = t2v_model_config(recipe, vae) if train_cfg.steps else None
    if model is not None:
        _check_patchable(recipe.data, vae.cfg.spatial_factor, model[0].patch)
    dataset, description = t2v_dataset(recipe.data, train_cfg.seed)
    warn_toy_vae(recipe.data.source, recipe.vae)
    cache = build_latent_cache(
        dataset,
        vae,
        text,
        Path(recipe.cache) if recipe.cache else run / "latents",
        num_clips=recipe.data.cached,
        description=description,
        workers=train_cfg.num_workers,
        frame_stride=recipe.task.keyframe_stride if recipe.task.keyframes else 0,
    )
    caches = [LatentDataset(c) for c in (cache, *recipe.extra_caches)]
    if recipe.task.keyframes:
        for c in caches:
            if not c.has_frame_latents:
                raise InputError(
                    f"{c.root}: keyframe training (task.keyframes > 0) needs a cache with single-frame "
                    "latents; build a new one in another folder (--cache)"
                )
    latents: Dataset = join_caches(caches[0], caches[1:]) if len(caches) > 1 else caches[0]
    latents = with_focus(latents, recipe.task, vae.cfg, cache)
    if train_cfg.steps == 0:
        log(f"latent cache ready: {cache} ({len(latents)} clips); steps = 0 trains nothing")
        return cache
    # 3. The model and its spec: how sampling must read its latents and noise levels.
    dit_cfg, init_state = model
    spec = ModelSpec(
        flow=recipe.flow,
        latent_shift=vae.cfg.latent_shift,
        latent_scale=vae.cfg.latent_scale,
        vae=reference(recipe.vae, "vae3d"),
    )
    null, _ = text.encode([""])
    torch.manual_seed(train_cfg.seed)  # the model's initial weights: a run is a function of its seed
    combos = parse_held_out(recipe.data.held_out) if recipe.data.source == "shapes" else ()
    # The preview grid: the first three clips' captions (a set may hold fewer) and a held-out one.
    captions = [latents[i]["caption"] for i in range(min(3, len(latents)))]
    prompts = captions + [f"a {c} {s} moves {d}" for c, s, d in combos if "*" not in (c, s, d)][:1]
    task = T2VTask(
        dit_cfg,
        spec,
        recipe.task,
        null[0],
        preview=Preview(
            vae,
            text,
            prompts,
            GenerateConfig(frames=recipe.data.frames, height=recipe.data.size, width=recipe.data.size),
            fps=recipe.data.fps or 8.0,
        ),
        data_name=f"{description}, {len(latents)} clips",
        data_shapes=trained_shapes(latents, vae, recipe.task.latent_frames),
    )
    if init_state is not None:
        # Newly added frame / place embeddings, text refiner layers and conditions start as no-ops.
        load_init(
            task.model,
            init_state,
            recipe.init,
            ("frame_embed.", "place_embed.", "text_refiner.", "vector_embed."),
        )
    # 4. Train (an existing run folder resumes).
    what = f"DiT {recipe.init or 'from scratch'}"
    return fit_recipe(
        recipe, task, latents, collate_latents, log, what, f"{len(latents)} cached clips in {cache}"
    )


def train_lora(recipe: LoRARecipe, log: Log = print) -> Path:
    """Encode the clips (once, resumable) and train a LoRA on the base DiT; returns
    RUN/lora.safetensors."""
    from filmstrip.pipelines.denoise import load_pipeline
    from filmstrip.train.lora_task import LoRATask

    if not recipe.run:
        raise InputError("a training run needs a run folder (run = ...)")
    run, train_cfg = Path(recipe.run), recipe.train
    device = default_device(init_distributed())
    pipe = load_pipeline(recipe.base, device)  # the base DiT, its VAE, spec and text encoder
    if pipe.text is None:
        raise InputError(
            f"{resolve(recipe.base, 't2v')}: a LoRA teaches a text-to-video model; this one reads no text"
        )
    prior = LatentDataset(recipe.prior) if recipe.prior else None  # a wrong path: refused before encoding
    _check_patchable(recipe.data, pipe.vae.cfg.spatial_factor, pipe.dit.cfg.patch)
    dataset, description = t2v_dataset(recipe.data, train_cfg.seed)
    cache = build_latent_cache(
        dataset,
        pipe.vae,
        pipe.text,
        Path(recipe.cache) if recipe.cache else run / "latents",
        num_clips=recipe.data.cached,
        description=description,
        workers=train_cfg.num_workers,
        frame_stride=recipe.task.keyframe_stride if recipe.task.keyframes else 0,
    )
    latents = with_focus(LatentDataset(cache), recipe.task, pipe.vae.cfg, cache)
    description = f"{description}, {len(latents)} clips"
    detail = f"{len(latents)} cached clips in {cache}"
    if prior is not None:
        latents = _with_prior(latents, prior, recipe, train_cfg.seed)
        description += f", prior {recipe.prior}"
        detail += f", and {len(latents.parts[1])} an epoch drawn from the prior {recipe.prior}"
    null, _ = pipe.text.encode([""])
    torch.manual_seed(train_cfg.seed)  # the adapters' random A matrices
    task = LoRATask(
        pipe.dit.train(),
        pipe.spec,
        recipe.task,
        recipe.lora,
        null[0],
        data_name=description,
        base_name=reference(recipe.base, "t2v"),
        shift=recipe.shift,
    )
    trainable = sum(p.numel() for p in task.model.parameters() if p.requires_grad)
    detail = f"{trainable / 1e6:.3f}M trainable (rank {recipe.lora.rank}); {detail}"
    fit_recipe(recipe, task, latents, collate_latents, log, f"LoRA on {task.base_name}", detail)
    return run / "lora.safetensors"


def _with_prior(latents: LatentDataset, prior: LatentDataset, recipe: LoRARecipe, seed: int) -> Dataset:
    """The new clips joined with prior-preservation clips (`recipe.prior`), the prior taking
    `prior_share` of the batches; each source batches on its own (they may differ in size)."""
    if prior[0]["latents"].shape != latents[0]["latents"].shape:
        raise InputError(
            f"{recipe.prior}: prior clips of latent shape {tuple(prior[0]['latents'].shape)}, "
            f"the new clips {tuple(latents[0]['latents'].shape)}; cache the prior at the same frames and size"
        )
    size = min(len(prior), round(len(latents) * recipe.prior_share / (1 - recipe.prior_share)))
    return JoinedDataset([latents, Resampled(prior, size, seed)])


def train_controlnet(recipe: ControlRecipe, log: Log = print) -> Path:
    """Encode the clips (once, resumable) and train a ControlNet on the frozen base DiT, the
    clips' object masks as its structure maps; returns RUN/model (the branch alone)."""
    from filmstrip.data.structure import WithMasks
    from filmstrip.models.controlnet import load_controlnet
    from filmstrip.pipelines.denoise import load_pipeline
    from filmstrip.train.control_task import ControlTask

    if not recipe.run:
        raise InputError("a training run needs a run folder (run = ...)")
    if recipe.data.source != "shapes" or recipe.data.mirror:
        raise InputError("a ControlNet trains on `shapes` object masks (data.source = shapes, no mirror)")
    run, train_cfg = Path(recipe.run), recipe.train
    device = default_device(init_distributed())
    pipe = load_pipeline(recipe.base, device)
    if pipe.text is None:
        raise InputError(f"{resolve(recipe.base, 't2v')}: a ControlNet here steers a text-to-video model")
    cfg = replace(
        recipe.controlnet,
        temporal_factor=pipe.vae.cfg.temporal_factor,
        spatial_factor=pipe.vae.cfg.spatial_factor,
    )
    init = load_controlnet(recipe.init, pipe.dit) if recipe.init else None  # refused before encoding
    if init is not None and init.cfg != cfg:
        differ = ", ".join(f"{k} {getattr(init.cfg, k)} (the recipe: {v})" for k, v in asdict(cfg).items()
                           if getattr(init.cfg, k) != v)  # fmt: skip
        raise InputError(f"{recipe.init}: a branch of {differ}: leave [controlnet] as the branch was trained")
    _check_patchable(recipe.data, pipe.vae.cfg.spatial_factor, pipe.dit.cfg.patch)
    dataset, description = t2v_dataset(recipe.data, train_cfg.seed)
    cache = build_latent_cache(
        dataset, pipe.vae, pipe.text, Path(recipe.cache) if recipe.cache else run / "latents",
        num_clips=recipe.data.clips, description=description, workers=train_cfg.num_workers,
        frame_stride=recipe.task.keyframe_stride if recipe.task.keyframes else 0,
    )  # fmt: skip
    clips = WithMasks(LatentDataset(cache), recipe.data.size)
    null, _ = pipe.text.encode([""])
    torch.manual_seed(train_cfg.seed)
    base_name = reference(recipe.base, "t2v")
    task = ControlTask(pipe.dit.train(), pipe.spec, recipe.task, cfg, null[0], description, base_name, init)
    trainable = sum(p.numel() for p in task.model.parameters() if p.requires_grad)
    detail = f"{trainable / 1e6:.2f}M trainable (depth {cfg.depth}); {len(clips)} cached clips in {cache}"
    fit_recipe(recipe, task, clips, collate_latents, log, f"ControlNet on {base_name}", detail)
    return run / "model"


# ---- autoencoders ----------------------------------------------------------------------
def vae_datasets(recipe: VAERecipe, split: str, seed: int) -> Dataset:
    parts = []
    for source in recipe.data:
        ds = build_dataset(
            source,
            num_frames=recipe.frames,
            height=recipe.size,
            width=recipe.size,
            fps=recipe.fps,
            seed=seed,
            split=split,
            clips_per_video=200,
        )
        parts.append(RandomCropDataset(ds, recipe.crop, seed) if recipe.crop else ds)
    return parts[0] if len(parts) == 1 else JoinedDataset(parts)


def vae_model_config(recipe: VAERecipe) -> tuple[VAEConfig, VideoVAE | None]:
    init = load_vae(recipe.init) if recipe.init else None
    if recipe.freeze_encoder and init is None:
        raise InputError("freeze_encoder fine-tunes a trained model's decoder: give it with init")
    shape = {
        k: getattr(recipe, k)
        for k in ("channels", "temporal_factor", "latent_channels", "norm")
        if getattr(recipe, k)
    }
    if shape and init:
        raise InputError(f"{', '.join(shape)} shape a new model; a model given with init keeps its own")
    cfg = init.cfg if init else vae_preset(recipe.preset, **shape)
    if recipe.latent_channels is not None and cfg.bottleneck == "fsq":
        raise InputError("latent_channels sets KL latents; an FSQ model has one channel per level")
    if recipe.time_upsample:
        if cfg.temporal_factor == 1:
            raise InputError("time_upsample needs a model that compresses time (not the 2D baseline)")
        cfg = replace(cfg, time_upsample=recipe.time_upsample)
    return cfg, init


def train_vae(recipe: VAERecipe, log: Log = print) -> Path:
    """Train an autoencoder on built-in data or footage (folder:PATH); returns RUN/model."""
    if not recipe.run:
        raise InputError("a training run needs a run folder (run = ...)")
    train_cfg = recipe.train
    train_set = vae_datasets(recipe, "train", train_cfg.seed)
    folders = any(d.startswith("folder:") for d in recipe.data)
    held_out = train_set if folders else vae_datasets(recipe, "test", train_cfg.seed + 1)
    preview = torch.stack([held_out[i * max(1, len(held_out) // 8)]["video"] for i in range(8)])
    cfg, init = vae_model_config(recipe)
    torch.manual_seed(train_cfg.seed)  # the model's initial weights: a run is a function of its seed
    task = VAETask(
        cfg,
        recipe.loss,
        preview=preview,
        data_name="+".join(recipe.data),
        freeze_encoder=recipe.freeze_encoder,
    )
    task.model.check_input(preview[:1])  # a size the VAE cannot encode: said before the run starts
    if init is not None:
        # A learned time upsampling added to a "repeat" decoder starts as an exact repeat.
        load_init(task.model, init.state_dict(), recipe.init, may_be_new=(".time_ups.",))
    detail = f"{cfg.compression:.0f}x compression, {len(train_set)} training clips"
    return fit_recipe(recipe, task, train_set, collate_clips, log, recipe.init or recipe.preset, detail)
