"""Generate argparse flags from typed, frozen config dataclasses.

Each option is declared once, as a dataclass field::

    port: int = field(default=30000, metadata={"help": "port to listen on"})

``add_dataclass_arguments(parser, Cfg)`` adds ``--port`` (the name with ``_`` -> ``-``,
or ``metadata["flag"]``); nested dataclass fields add their own fields. Defaults are
suppressed in the parser, so ``dataclass_from_args(Cfg, ns, base)`` overrides only the
flags the user gave on top of ``base`` (the defaults, or a config file): file and CLI
compose without a second set of defaults.

Supported field types: ``bool`` (``--x/--no-x``), ``int``, ``float``, ``str``,
``X | None``, ``tuple[X, ...]`` (repeatable: ``--x a --x b`` or ``--x a b``) and
``Literal[...]`` (choices). ``metadata={"cli": False}`` keeps a field off the CLI.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Literal, TypeVar

T = TypeVar("T")

__all__ = ["add_dataclass_arguments", "dataclass_from_args"]


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _dest(prefix: str, name: str) -> str:
    return f"{prefix}{name}"


def add_dataclass_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, prefix: str = ""
) -> None:
    hints = typing.get_type_hints(cls)
    group = parser
    if not prefix and isinstance(parser, argparse.ArgumentParser) and cls.__doc__:
        group = parser
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if meta.get("cli") is False:
            continue
        tp, optional = _unwrap_optional(hints[f.name])
        if dataclasses.is_dataclass(tp):
            sub = parser.add_argument_group(tp.__name__, (tp.__doc__ or "").strip().split("\n")[0])
            add_dataclass_arguments(sub, tp, prefix=f"{prefix}{f.name}.")
            continue
        flag = meta.get("flag", "--" + f.name.replace("_", "-"))
        kwargs: dict[str, Any] = {
            "dest": _dest(prefix, f.name),
            "default": argparse.SUPPRESS,
            "help": _help(meta.get("help", ""), f),
        }
        origin = typing.get_origin(tp)
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is tuple:
            (inner, *_rest) = typing.get_args(tp)
            kwargs["type"] = _scalar(inner)
            kwargs["nargs"] = "+"
            kwargs["action"] = "extend"
            if typing.get_origin(inner) is Literal:
                kwargs["choices"] = typing.get_args(inner)
                kwargs["type"] = type(typing.get_args(inner)[0])
        elif origin is Literal:
            kwargs["choices"] = typing.get_args(tp)
            kwargs["type"] = type(typing.get_args(tp)[0])
        else:
            kwargs["type"] = _scalar(tp)
        if "metavar" in meta:
            kwargs["metavar"] = meta["metavar"]
        group.add_argument(flag, *meta.get("aliases", ()), **kwargs)


def _help(text: str, f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING and f.default not in ((), None, ""):
        return f"{text} (default: {f.default})"
    return text


def _scalar(tp: Any) -> Any:
    if tp in (int, float, str):
        return tp
    return str


def dataclass_from_args(cls: type[T], ns: argparse.Namespace, base: T | None = None) -> T:
    """Build ``cls`` from ``base`` (or its defaults) with the flags present in ``ns``."""
    given = vars(ns)
    return _build(cls, given, "", base)


def _build(cls: type[T], given: dict[str, Any], prefix: str, base: Any) -> T:
    hints = typing.get_type_hints(cls)
    current = base if base is not None else cls()
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        tp, _ = _unwrap_optional(hints[f.name])
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            sub_base = getattr(current, f.name)
            new = _build(tp, given, f"{key}.", sub_base)
            if new != sub_base:
                changes[f.name] = new
        elif key in given:
            value = given[key]
            if typing.get_origin(tp) is tuple and isinstance(value, list):
                value = tuple(value)
            changes[f.name] = value
    return dataclasses.replace(current, **changes) if changes else current
