"""Frozen dataclasses from dicts, TOML files and `--set a.b=value` overrides, checked field by
field, so a bad config gets one sentence naming the field instead of a TypeError.

    cfg = from_dict(T2VRecipe, tomllib.load(f))          # nested dataclasses, tuples, Optionals
    d = set_path(asdict(cfg), "dit.depth", "8")           # the value is parsed as TOML
    cfg = from_dict(T2VRecipe, d)

A field missing from the dict takes its default; a field the dataclass does not have is an
error (a typo must not be silently ignored).
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union

from filmstrip.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")


def _check(tp: Any, value: Any, where: str) -> Any:
    """`value` converted to type `tp` (JSON/TOML lists -> tuples, ints -> floats), or an error."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _check(option, value, where)
            except InputError as e:
                errors.append(str(e))
        raise InputError(errors[0] if errors else f"{where}: cannot be {value!r}")
    if dataclasses.is_dataclass(tp):
        if dataclasses.is_dataclass(value):
            return value
        if not isinstance(value, dict):
            raise InputError(f"{where}: expected a table of settings, got {value!r}")
        return from_dict(tp, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise InputError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_check(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise InputError(f"{where}: expected a number, got {value!r}")
    if tp is int or tp is bool or tp is str:
        if type(value) is not tp:
            names = {int: "an integer", bool: "true or false", str: "a string"}
            raise InputError(f"{where}: expected {names[tp]}, got {value!r}")
        return value
    raise InputError(f"{where}: unsupported setting type {tp}")


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)  # resolving string annotations costs ~0.3 ms a call


def check_types(cfg: Any, section: str) -> None:
    """For a config's `__post_init__`: a config made in Python gets the type checks a recipe
    file gets (`from_dict`), each field against its annotation; numpy numbers count."""
    for name, tp in _type_hints(type(cfg)).items():
        value = getattr(cfg, name)
        if isinstance(value, numbers.Integral) and not isinstance(value, bool) and tp in (int, float):
            continue
        if (
            isinstance(value, numbers.Real)
            and not isinstance(value, (bool, numbers.Integral))
            and tp is float
        ):
            continue
        _check(tp, value, f"{section}.{name}")


def require(
    cfg: Any, *, at_least: dict[str, float] | None = None, above: dict[str, float] | None = None
) -> None:
    """For a config's `__post_init__`: one sentence naming the first field out of range (NaN
    is out of every range)."""
    for bounds, words, ok in ((at_least, "at least", float.__ge__), (above, "more than", float.__gt__)):
        for name, bound in (bounds or {}).items():
            value = getattr(cfg, name)
            if not ok(float(value), float(bound)):
                raise InputError(f"{name} must be {words} {bound}, got {value}")


def from_dict(cls: type[T], d: dict, where: str = "") -> T:
    """An instance of dataclass `cls` from `d`, each field checked against its annotation."""
    if not isinstance(d, dict):
        raise InputError(f"{where or cls.__name__}: expected a table of settings, got {d!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(d) - names)
    if unknown:
        raise InputError(
            f"{where + ': ' if where else ''}unknown setting {'.'.join(filter(None, [where, unknown[0]]))!r} "
            f"for {cls.__name__}; known: {', '.join(sorted(names))}"
        )
    kwargs = {k: _check(hints[k], v, ".".join(filter(None, [where, k]))) for k, v in d.items()}
    try:
        return cls(**kwargs)
    except InputError as e:
        raise InputError(f"{where + ': ' if where else ''}{e}") from None


def to_dict(cfg: Any) -> dict:
    """A dataclass as plain dicts and lists (what JSON and TOML hold)."""

    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(dataclasses.asdict(cfg))


def parse_value(text: str) -> Any:
    """A `--set` value as TOML (8, 2e-4, true, "a", [1, 2]); bare words are strings."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def set_value(d: dict, dotted: str, value: Any) -> dict:
    """`d` with the field at `a.b.c` set to `value` (a copy; intermediate tables are created)."""
    out = dict(d)
    node = out
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        node[part] = dict(child) if isinstance(child, dict) else {}
        node = node[part]
    node[parts[-1]] = list(value) if isinstance(value, tuple) else value
    return out


def set_path(d: dict, assignment: str) -> dict:
    """`d` with `a.b.c=value` applied, the value read as TOML."""
    key, sep, text = assignment.partition("=")
    if not sep or not key.strip():
        raise InputError(f"--set takes SECTION.FIELD=VALUE, e.g. train.lr=2e-4; got {assignment!r}")
    return set_value(d, key.strip(), parse_value(text.strip()))


def merge(base: dict, update: dict) -> dict:
    """`base` with `update` laid over it, table by table."""
    out = dict(base)
    for k, v in update.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_toml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such config file")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not a valid TOML file ({e})") from None


def to_toml(d: dict) -> str:
    """A dict of scalars, lists and tables as TOML (enough for recording a run's settings)."""

    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    def table(d: dict, prefix: str) -> list[str]:
        lines = [f"{k} = {value(v)}" for k, v in d.items() if not isinstance(v, dict) and v is not None]
        for k, v in d.items():
            if isinstance(v, dict):
                name = f"{prefix}.{k}" if prefix else k
                lines += ["", f"[{name}]", *table(v, name)]
        return lines

    return "\n".join(table(d, "")).strip() + "\n"
