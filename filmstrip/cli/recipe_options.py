"""CLI options over a recipe dataclass: each option names the field it sets, and its default
is read from the dataclass. A run's settings are laid on top of each other, later wins:

    the recipe's defaults < --preset < --config FILE.toml < options given on the command line
    < --set SECTION.FIELD=VALUE (repeatable)

Only options actually typed on the command line count, so a config file is never overridden by
an option's default.

Also the one option every evaluator shares: `count_option`, a count of at least one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from filmstrip.config import from_dict, load_toml, merge, set_path, set_value, to_dict

# `--run-dir` is `--run` for launches through torchrun, whose parser takes `--run` anywhere on
# the line for an abbreviation of its own `--run-path` ("ambiguous option").
RUN_DECLS = ("--run", "--run-dir")


def count_option(name: str, default: int, help: str):
    """How many prompts, scenes, clips or starts to measure: at least one (none would measure nothing)."""
    return click.option(name, type=click.IntRange(min=1), default=default, show_default=True, help=help)


@dataclass(frozen=True, eq=False)  # hashed by identity: a key of the typed options
class Opt:
    decls: tuple[str, ...]  # click's declarations, e.g. ("--steps",) or ("--run", "run")
    path: str | None  # the recipe field it sets, e.g. "train.steps"; None: `layer` decides
    help: str = ""
    kwargs: dict = field(default_factory=dict)  # further click.option arguments
    convert: Callable[[Any], Any] | None = None  # CLI value -> recipe value
    layer: Callable[[Any], dict] | None = None  # CLI value -> a dict laid under the config file

    @property
    def name(self) -> str:
        named = [d for d in self.decls if not d.startswith("-")]
        return named[0] if named else self.decls[0].lstrip("-").split("/")[0].replace("-", "_")


def _get(d: dict, path: str):
    for part in path.split("."):
        d = d[part]
    return d


def recipe_options(recipe_cls: type, options: list[Opt]):
    """Decorate a command taking `recipe` (an instance of `recipe_cls`) built from its options."""
    defaults = to_dict(recipe_cls())

    def decorate(fn):
        @functools.wraps(fn)
        @click.pass_context
        def wrapper(ctx: click.Context, config: Path | None, overrides: tuple[str, ...], **values):
            settings = dict(defaults)
            typed = {
                o: values[o.name]
                for o in options
                if ctx.get_parameter_source(o.name)
                in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
            }
            for o, v in typed.items():
                if o.layer is not None:
                    settings = merge(settings, o.layer(v))
            if config is not None:
                settings = merge(settings, load_toml(config))
            for o, v in typed.items():
                if o.path is not None:
                    settings = set_value(settings, o.path, o.convert(v) if o.convert else v)
            for assignment in overrides:
                settings = set_path(settings, assignment)
            return fn(recipe=from_dict(recipe_cls, settings))

        for o in reversed(options):
            kwargs = dict(o.kwargs)
            if o.path is not None and "default" not in kwargs:
                default = _get(defaults, o.path)
                kwargs["default"] = tuple(default) if kwargs.get("multiple") else default
                kwargs.setdefault("show_default", True)
            wrapper = click.option(*o.decls, help=o.help, **kwargs)(wrapper)
        wrapper = click.option(
            "--set",
            "overrides",
            multiple=True,
            metavar="SECTION.FIELD=VALUE",
            help="Override any recipe setting, e.g. --set train.lr=2e-4 (repeatable; a section per recipe table).",
        )(wrapper)
        wrapper = click.option(
            "--config",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="A recipe file (TOML; see recipes/); options given here override it.",
        )(wrapper)
        return wrapper

    return decorate


def trainer_opts() -> list[Opt]:
    """The options every training command shares, over the recipe's `train` section."""
    return [
        Opt(("--steps",), "train.steps", "Length of the learning-rate schedule (0: prepare only)."),
        Opt(("--batch-size",), "train.batch_size", "Global: all ranks and accumulation steps together."),
        Opt(("--accumulate",), "train.accumulate", "Gradient accumulation steps."),
        Opt(("--lr",), "train.lr", "Peak learning rate."),
        Opt(("--warmup",), "train.warmup", "Warm-up steps."),
        Opt(("--bf16/--fp32",), "train.bf16", "bf16 autocast (where the device runs it fast)."),
        Opt(
            ("--compile/--no-compile",),
            "train.compile",
            "torch.compile the model: slow first step, faster after.",
        ),
        Opt(("--workers",), "train.num_workers", "DataLoader worker processes."),
        Opt(("--ckpt-every",), "train.ckpt_every", "Checkpoint every N steps."),
        Opt(("--sample-every",), "train.sample_every", "Draw samples every N steps (0: never)."),
        Opt(("--seed",), "train.seed", "Seed of the data order, the noise and the model."),
        Opt(
            ("--stop-at",),
            "train.stop_at",
            "End the run at this step, before its schedule does.",
            {"type": int},
        ),
    ]
