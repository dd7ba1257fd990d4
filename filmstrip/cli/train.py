"""`filmstrip train`: train the generative models from recipes (train/recipes.py)."""

from __future__ import annotations

import click

from filmstrip.cli import echo_main
from filmstrip.cli.recipe_options import RUN_DECLS, Opt, recipe_options, trainer_opts
from filmstrip.config import to_dict
from filmstrip.models.dit import PRESETS as DIT_PRESETS
from filmstrip.models.dit import preset as dit_preset
from filmstrip.train.recipes import ControlRecipe, LoRARecipe, T2VRecipe


@click.group()
def train() -> None:
    """Train the generative models."""


def _preset_layer(name: str) -> dict:
    """--preset: the named DiT size as the recipe's `dit` section (under a config file)."""
    dit = to_dict(dit_preset(name))
    dit.pop("in_channels")  # from the VAE
    return {"dit": dit}


@train.command("t2v")
@recipe_options(
    T2VRecipe,
    [
        Opt(("--data", "source"), "data.source", "shapes, digits or folder:PATH (captioned)."),
        Opt(
            ("--preset",),
            None,
            "DiT size; its settings sit under --config and --set.",
            {"type": click.Choice(list(DIT_PRESETS)), "default": "small", "show_default": True},
            layer=_preset_layer,
        ),
        Opt(
            ("--attention",),
            "dit.attention",
            "Full or (2+1)D attention.",
            {"type": click.Choice(["full", "factorized"])},
        ),
        Opt(
            RUN_DECLS,
            "run",
            "Run folder; an existing run resumes.",
            {"type": click.Path(file_okay=False), "show_default": False},
        ),
        Opt(
            ("--vae",),
            "vae",
            "The autoencoder of the latent space [default: bundled 3D VAE].",
            {"type": click.Path()},
        ),
        Opt(
            ("--cache",),
            "cache",
            "Latent cache folder [default: RUN/latents].",
            {"type": click.Path(file_okay=False)},
        ),
        Opt(("--clips",), "data.clips", "Training clips to encode into the cache."),
        Opt(("--frames",), "data.frames", "Frames per clip."),
        Opt(("--size",), "data.size", "Frame height and width."),
        Opt(("--fps",), "data.fps", "Sampling rate [default: 8, or each video's own].", {"type": float}),
        Opt(
            ("--hold-out", "held_out"),
            "data.held_out",
            "colour,shape,direction never shown in training (shapes only; repeat).",
            {"multiple": True},
        ),
        Opt(
            ("--start-words",),
            "data.start_words",
            "Chance that a caption says where an object starts (shapes).",
        ),
        Opt(("--objects",), "data.objects", "Objects per clip, N or MIN-MAX (shapes only)."),
        Opt(("--speed",), "data.speed", "Object speed MIN-MAX in frame widths per second (shapes only)."),
        Opt(
            ("--camera",), "data.camera", "Share of clips filmed by a panning, zooming camera (shapes only)."
        ),
        Opt(
            ("--condition-on", "condition_on"),
            None,
            "A per-frame condition to learn: motion (`generate --motion`) or camera (`generate "
            "--camera`); repeat for both. Added to an --init model as a no-op.",
            {"multiple": True, "type": click.Choice(["motion", "camera"])},
            layer=lambda names: (
                {"dit": {"vectors": [[n, {"motion": 1, "camera": 3}[n]] for n in names]}} if names else {}
            ),
        ),
        Opt(
            ("--extra-cache", "extra_caches"),
            "extra_caches",
            "Further built latent caches (same VAE) to train on as well; repeat to add more.",
            {"multiple": True, "type": click.Path(file_okay=False)},
        ),
        Opt(("--text-dropout",), "task.text_dropout", "Share of captions dropped to the empty prompt."),
        Opt(("--motion",), "task.motion", "Weight of the motion (frame difference) loss."),
        Opt(
            ("--frame-embedding/--no-frame-embedding",),
            "dit.frame_embedding",
            "Give the DiT each latent frame's absolute index (added to a model given with --init).",
        ),
        Opt(
            ("--place-embedding/--no-place-embedding",),
            "dit.place_embedding",
            "Give the DiT each token's place in the frame (added to a model given with --init).",
        ),
        Opt(
            ("--text-refiner",),
            "dit.text_refiner",
            "Self-attention layers over the prompt's tokens (added to an --init model as a pass-through).",
        ),
        Opt(
            ("--frame-noise",),
            "task.frame_noise",
            "Share of video clips with a noise level per latent frame.",
        ),
        Opt(
            ("--first-frame",),
            "task.first_frame",
            "Share of video clips given their first frame clean (image to video).",
        ),
        Opt(("--prefix",), "task.prefix", "Share of video clips given a clean prefix (extension)."),
        Opt(
            ("--keyframes",),
            "task.keyframes",
            "Share of video clips given 1-2 keyframes (the cache also holds single-frame latents).",
        ),
        Opt(
            ("--last-frame",),
            "task.last_frame",
            "Of the keyframed clips, the share whose keyframe is the last frame.",
        ),
        Opt(
            ("--causal/--no-causal",),
            "dit.causal",
            "Block-causal attention over latent frames, for streaming with a KV cache (an --init model "
            "is made causal and loses its frame embedding).",
        ),
        Opt(
            ("--rollout",),
            "task.rollout",
            "Share of video clips (causal models) whose prefix is the model's own rollout.",
        ),
        Opt(
            ("--shift",),
            "flow.shift",
            "Fixed timestep shift for training and sampling [default: from the token count].",
            {"type": float},
        ),
        Opt(
            ("--init",),
            "init",
            "Start from this DiT (fine-tuning); its config replaces --preset.",
            {"type": click.Path()},
        ),
        *trainer_opts(),
    ],
)
def train_t2v(recipe: T2VRecipe) -> None:
    """Train a text-to-video DiT on VAE latents (cached on first use; --steps 0 only builds
    the cache, e.g. several in parallel before one run trains on them all)."""
    from filmstrip.train.recipes import train_t2v as run

    out = run(recipe, log=echo_main)
    if recipe.train.steps:
        echo_main(f"model: {out}")


@train.command("lora")
@recipe_options(
    LoRARecipe,
    [
        Opt(
            ("--data", "source"), "data.source", "The clips to learn from: folder:PATH (captioned) or shapes."
        ),
        Opt(
            RUN_DECLS,
            "run",
            "Run folder; an existing run resumes.",
            {"type": click.Path(file_okay=False), "show_default": False},
        ),
        Opt(
            ("--base",),
            "base",
            "The text-to-video DiT to adapt [default: the bundled one].",
            {"type": click.Path()},
        ),
        Opt(
            ("--cache",),
            "cache",
            "Latent cache folder [default: RUN/latents].",
            {"type": click.Path(file_okay=False)},
        ),
        Opt(("--clips",), "data.clips", "Clips to encode (at most)."),
        Opt(("--frames",), "data.frames", "Frames per clip."),
        Opt(("--size",), "data.size", "Frame height and width (the bucket area for folders)."),
        Opt(("--fps",), "data.fps", "Sampling rate [default: 8, or each video's own].", {"type": float}),
        Opt(
            ("--mirror/--no-mirror",),
            "data.mirror",
            "Also each clip flipped left to right, its caption's left and right swapped.",
        ),
        Opt(
            ("--prior",),
            "prior",
            "A latent cache of the base model's own kind of clips, trained on beside the new ones "
            "(prior preservation) [default: none].",
            {"type": click.Path(file_okay=False)},
        ),
        Opt(("--prior-share",), "prior_share", "The prior clips' share of the batches."),
        Opt(
            ("--shift",),
            "shift",
            "Timestep shift of the training noise levels (sampling keeps the base model's).",
            {"type": float},
        ),
        Opt(("--rank",), "lora.rank", "Rank of the adapters."),
        Opt(("--alpha",), "lora.alpha", "LoRA alpha [default: the rank].", {"type": float}),
        Opt(
            ("--frame-noise",),
            "task.frame_noise",
            "Share of video clips with a noise level per latent frame.",
        ),
        Opt(
            ("--focus-weight",),
            "task.focus_weight",
            "Loss weight of what clips' focus masks (clip.mask.mp4) cover, against 1 elsewhere.",
            {"type": float},
        ),
        *trainer_opts(),
    ],
)
def train_lora(recipe: LoRARecipe) -> None:
    """Teach a trained text-to-video DiT a new concept from a few dozen captioned clips with
    low-rank adapters; writes RUN/lora.safetensors (use it with `generate --lora`)."""
    from filmstrip.train.recipes import train_lora as run

    echo_main(f"lora: {run(recipe, log=echo_main)}")


@train.command("controlnet")
@recipe_options(
    ControlRecipe,
    [
        Opt(
            RUN_DECLS,
            "run",
            "Run folder; an existing run resumes.",
            {"type": click.Path(file_okay=False), "show_default": False},
        ),
        Opt(
            ("--base",),
            "base",
            "The text-to-video DiT to control [default: the bundled one].",
            {"type": click.Path()},
        ),
        Opt(
            ("--init",),
            "init",
            "A trained ControlNet to go on training [default: a fresh branch].",
            {"type": click.Path(file_okay=False)},
        ),
        Opt(
            ("--cache",),
            "cache",
            "Latent cache of `shapes` clips [default: RUN/latents, built on first use].",
            {"type": click.Path(file_okay=False)},
        ),
        Opt(("--clips",), "data.clips", "Training clips to encode into the cache."),
        Opt(("--frames",), "data.frames", "Frames per clip."),
        Opt(("--size",), "data.size", "Frame height and width."),
        Opt(("--depth",), "controlnet.depth", "Copies of the DiT's first blocks in the branch."),
        Opt(
            ("--frame-noise",),
            "task.frame_noise",
            "Share of video clips with a noise level per latent frame.",
        ),
        *trainer_opts(),
    ],
)
def train_controlnet(recipe: ControlRecipe) -> None:
    """Train a ControlNet side branch on a frozen text-to-video DiT, conditioned on the object
    masks of `shapes` clips; writes RUN/model (use it with `generate --control-net`)."""
    from filmstrip.train.recipes import train_controlnet as run

    echo_main(f"controlnet: {run(recipe, log=echo_main)}")
