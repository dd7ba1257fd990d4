"""The README's examples name what exists: every Python import resolves, every keyword a
call passes is one the callee takes, and every `filmstrip` command line names a real command
and only its options. (Running them would download nothing but take minutes; a renamed
option or field is what drifts.)"""

import ast
import importlib
import inspect
import re
import shlex
from pathlib import Path

import click
import pytest

from filmstrip.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(language: str) -> list[tuple[str, str]]:
    """(file name, code) of every fenced block in `language`."""
    found = []
    for doc in DOCS:
        for code in re.findall(rf"```{language}\n(.*?)```", doc.read_text(), flags=re.S):
            found.append((doc.name, code))
    return found


def command_lines() -> list[tuple[str, list[str]]]:
    """Each `filmstrip ...` line of the docs' shell blocks as its arguments after `filmstrip`
    (continuation lines joined, comments dropped)."""
    lines = []
    for name, code in blocks("bash"):
        for line in code.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words and Path(words[0]).name == "filmstrip":
                lines.append((name, words[1:]))
    return lines


@pytest.mark.parametrize("doc,code", blocks("python"), ids=lambda v: v if v.endswith(".md") else "")
def test_python_examples_import_and_call_what_exists(doc, code):
    tree = ast.parse(code)
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{doc}: {node.module} has no {alias.name}"
                names[alias.asname or alias.name] = getattr(module, alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names:
            target = names[node.func.id]
            keywords = {k.arg: None for k in node.keywords if k.arg is not None}
            try:
                inspect.signature(target).bind_partial(**keywords)
            except TypeError as e:
                pytest.fail(f"{doc}: {node.func.id}({', '.join(keywords)}): {e}")


def unknown_words(words: list[str]) -> list[str]:
    """What in `filmstrip WORDS` is not a command or one of its options."""
    command: click.Command = main
    ctx = click.Context(main)
    while isinstance(command, click.Group) and words and not words[0].startswith("-"):
        sub = command.get_command(ctx, words[0])
        if sub is None:
            return [words[0]]
        command, words = sub, words[1:]
    options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
    return [w for w in words if w.startswith("--") and w.split("=", 1)[0] not in options]


def test_every_command_line_names_a_real_command_and_its_options():
    lines = command_lines()
    assert len(lines) > 20  # the docs' commands were found
    for doc, words in lines:
        assert not unknown_words(words), f"{doc}: `filmstrip {' '.join(words)}`: {unknown_words(words)}"
    # The check itself: a misspelt option and a missing command are caught.
    assert unknown_words(["generate", "a red circle", "--frame", "17"]) == ["--frame"]
    assert unknown_words(["eval", "sharpness", "-c", "x"]) == ["sharpness"]


def test_the_files_the_docs_name_exist():
    """README, ARCHITECTURE and READING name modules, recipes, tests and benchmarks by path: a renamed
    or removed file must take its mention with it. (RESULTS is a record of its day.)"""
    import subprocess

    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    tracked = set(listed.splitlines())
    names = {Path(p).name for p in tracked}
    for doc in (ROOT / "README.md", ROOT / "docs" / "ARCHITECTURE.md", ROOT / "docs" / "READING.md"):
        for path in re.findall(r"`([A-Za-z0-9_./-]+\.(?:py|toml|md))`", doc.read_text()):
            if path.startswith("RUN/"):  # a placeholder for the user's run folder
                continue
            if "/" in path:
                assert {path, f"filmstrip/{path}", f"recipes/{path}"} & tracked, f"{doc.name}: no {path}"
            else:
                assert path in names, f"{doc.name}: no file named {path}"
