"""The `filmstrip` command. It only parses arguments and calls the library; one module per
task (data, vae, train, generate, eval), each over library functions a notebook can call too.

Commands load lazily: `filmstrip --help` imports no torch, and `filmstrip generate` imports
only what generating needs, not the trainers and evaluators (the process start is part of
the main job's time).

Errors: a `FilmstripError` (bad input, a missing or wrong file) is printed as its one sentence
with exit code 1; anything else is a bug and keeps its traceback. `FILMSTRIP_DEBUG=1` shows the
traceback of ours too. A `FilmstripWarning` (the work goes on) is printed as one line,
"Warning: ...", not with Python's file, line and source.
"""

from __future__ import annotations

import gc
import importlib
import os
import warnings

import click

from filmstrip.errors import FilmstripError, FilmstripWarning

# name -> (module, attribute, one-line help shown by `filmstrip --help` without importing it)
COMMANDS = {
    "data": ("filmstrip.cli.data", "data", "Inspect the built-in datasets and your own videos."),
    "eval": ("filmstrip.cli.eval", "eval_group", "Evaluate trained models."),
    "generate": ("filmstrip.cli.generate", "generate", "Generate a video from a prompt (and images, clips)."),
    "info": ("filmstrip.cli.info", "info_cmd", "What a model, LoRA, latent cache or training run holds."),
    "play": ("filmstrip.cli.world", "play_cmd", "Play a world model live in a window."),
    "sample": ("filmstrip.cli.sample", "sample_cmd", "Generate a folder of videos from a file of prompts."),
    "train": ("filmstrip.cli.train", "train", "Train the generative models."),
    "vae": ("filmstrip.cli.vae", "vae", "Train and use the video autoencoders (3D VAE, 2D baseline, FSQ)."),
    "world": ("filmstrip.cli.world", "world", "Record game play, train world models on it, evaluate them."),
}


def on_main_rank() -> bool:
    """Whether this process speaks for the run: always, except the other ranks of a torchrun
    launch, which would print every line and warning once per process."""
    return os.environ.get("RANK", "0") == "0"


def echo_main(message: str = "", **kwargs) -> None:
    """click.echo on the main rank only."""
    if on_main_rank():
        click.echo(message, **kwargs)


class _Main(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][2]) for name in self.list_commands(ctx)])

    def invoke(self, ctx: click.Context):
        debug = os.environ.get("FILMSTRIP_DEBUG", "") not in ("", "0")
        show = warnings.showwarning
        shown: set[str] = set()  # a check made twice on its way down (CLI, then pipeline) says it once

        def one_line(message, category, *where, **kw):
            if issubclass(category, FilmstripWarning) and not debug:
                if str(message) not in shown and on_main_rank():
                    shown.add(str(message))
                    click.echo(f"Warning: {message}", err=True)
            else:
                show(message, category, *where, **kw)

        warnings.showwarning = one_line
        try:
            return super().invoke(ctx)
        except FilmstripError as e:
            if debug:
                raise
            raise click.ClickException(str(e)) from None
        finally:
            warnings.showwarning = show


@click.group(cls=_Main)
@click.version_option(package_name="filmstrip")
def main() -> None:
    """filmstrip: a compact, trainable video-generation stack."""


def entry() -> None:
    """The `filmstrip` program: `main`, then a quick exit. Python's last garbage collections
    at exit walk every object that importing torch made (0.3 s of a 2.8 s `generate` on a
    2-core CPU); frozen first, they are skipped. For the process entry only, never inside a
    caller's process, where frozen objects would never be collected."""
    try:
        main()
    finally:
        gc.freeze()
