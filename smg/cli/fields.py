"""Generate argparse flags from typed, frozen config dataclasses.

Each option is declared once, as a dataclass field::

    port: int = field(default=30000, metadata={"help": "port to listen on"})

``add_dataclass_arguments(parser, Cfg)`` adds ``--port`` (the name with ``_`` -> ``-``,
or ``metadata["flag"]``); nested dataclass fields add their own fields. Defaults are
suppressed in the parser, so ``dataclass_from_args(Cfg, ns, base)`` overrides only the
flags the user gave on top of ``base`` (the defaults, or a config file): file and CLI
compose without a second set of defaults.

Supported field types: ``bool`` (``--x/--no-x``; a ``disable_*`` field is one switch),
``int``, ``float``, ``str``, ``X | None``, ``tuple[X, ...]`` (repeatable: ``--x a --x b`` or ``--x a b``) and
``Literal[...]`` (choices). ``metadata={"cli": False}`` keeps a field off the CLI;
``metadata["choices"]``, a callable, gives names known only at run time (policies,
parsers), with ``metadata["refused"]`` mapping names refused with their own message.
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
    """Add a flag per leaf field of ``cls``. A nested section becomes an argument group
    titled by its field's ``metadata["title"]`` (else the class name), described by the
    first line of its docstring."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if meta.get("cli") is False:
            continue
        tp, optional = _unwrap_optional(hints[f.name])
        if dataclasses.is_dataclass(tp):
            sub = parser.add_argument_group(meta.get("title", tp.__name__), (tp.__doc__ or "").strip().split("\n")[0])
            add_dataclass_arguments(sub, tp, prefix=f"{prefix}{f.name}.")
            continue
        flag = meta.get("flag", "--" + f.name.replace("_", "-"))
        kwargs: dict[str, Any] = {"dest": _dest(prefix, f.name), "default": argparse.SUPPRESS}
        help_text = meta.get("help", "")
        origin = typing.get_origin(tp)
        if tp is bool:
            # "--disable-x" is a switch (no "--no-disable-x"); other booleans get --x/--no-x
            if f.name.startswith("disable_"):
                kwargs["action"] = "store_true"
            else:
                kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is tuple:
            (inner, *_rest) = typing.get_args(tp)
            kwargs["type"] = _scalar(inner)
            kwargs["nargs"] = "*" if meta.get("empty_ok") else "+"
            kwargs["action"] = "extend"
            if typing.get_origin(inner) is Literal:
                kwargs["choices"] = typing.get_args(inner)
                kwargs["type"] = type(typing.get_args(inner)[0])
        elif origin is Literal:
            kwargs["choices"] = typing.get_args(tp)
            kwargs["type"] = type(typing.get_args(tp)[0])
        else:
            kwargs["type"] = _scalar(tp)
        if "choices" in meta:  # a callable: names known at run time (policies, parsers)
            names = list(meta["choices"]())
            kwargs["type"] = _one_of(names, meta.get("refused", {}))
            kwargs["metavar"] = "NAME"
            help_text = f"{help_text}; one of: {', '.join(names)}"
        if "metavar" in meta:
            kwargs["metavar"] = meta["metavar"]
        kwargs["help"] = _help(help_text, f)
        parser.add_argument(flag, *meta.get("aliases", ()), **kwargs)


def _one_of(names: list[str], refused: dict[str, str]) -> Any:
    def check(value: str) -> str:
        if value in names:
            return value
        if value in refused:
            raise argparse.ArgumentTypeError(refused[value])
        raise argparse.ArgumentTypeError(f"unknown name {value!r}; choose one of: {', '.join(names)}")

    return check


def show_default(value: Any) -> str | None:
    """A default as one would type it on the command line (None: nothing worth showing)."""
    if value is dataclasses.MISSING or value in ((), None, "") or value is False:
        return None
    if value is True:
        return "on"
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _help(text: str, f: dataclasses.Field) -> str:
    shown = show_default(f.default)
    if shown is not None:
        return f"{text} (default: {shown})".replace("%", "%%")
    return text.replace("%", "%%")


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
