"""The `filmstrip` command. It only parses arguments and calls the library; one module per
task (data, vae, train, generate, eval), each over library functions a notebook can call too.

Errors: a `FilmstripError` (bad input, a missing or wrong file) is printed as its one sentence
with exit code 1; anything else is a bug and keeps its traceback. `FILMSTRIP_DEBUG=1` shows the
traceback of ours too.
"""

from __future__ import annotations

import os

import click

from filmstrip.errors import FilmstripError


class _Main(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FilmstripError as e:
            if os.environ.get("FILMSTRIP_DEBUG", "") not in ("", "0"):
                raise
            raise click.ClickException(str(e)) from None


@click.group(cls=_Main)
@click.version_option(package_name="filmstrip")
def main() -> None:
    """filmstrip: a compact, trainable video-generation stack."""


def _register() -> None:
    from filmstrip.cli import data, eval, generate, train, vae

    for command in (data.data, vae.vae, train.train, generate.generate, eval.eval_group):
        main.add_command(command)


_register()
