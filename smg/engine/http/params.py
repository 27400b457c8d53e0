"""Typed reads of JSON request fields: the right type or a 400 that names the field.

No schema library: each endpoint reads the handful of fields it uses with these helpers,
so a request costs a few dict lookups. Unknown fields are ignored, as vLLM and SGLang do.
``bool`` is never accepted where a number is expected (JSON ``true`` is not ``1``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from smg.engine.http.errors import BadRequest

__all__ = [
    "get_bool",
    "get_dict",
    "get_float",
    "get_int",
    "get_str",
    "int_list",
    "optional_int_list",
    "stop_strings",
]


def _type_error(key: str, want: str, value: Any) -> BadRequest:
    got = "null" if value is None else type(value).__name__
    return BadRequest(f"'{key}' must be {want}, got {got}: {value!r:.80}", param=key)


def get_int(
    body: Mapping[str, Any],
    key: str,
    default: Any = None,
    *,
    lo: int | None = None,
    hi: int | None = None,
) -> Any:
    """``body[key]`` as an int within ``[lo, hi]``; absent or null gives ``default``."""
    value = body.get(key)
    if value is None:
        return default
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int:
        raise _type_error(key, "an integer", value)
    if lo is not None and value < lo:
        raise BadRequest(f"'{key}' must be >= {lo}, got {value}", param=key)
    if hi is not None and value > hi:
        raise BadRequest(f"'{key}' must be <= {hi}, got {value}", param=key)
    return value


def get_float(
    body: Mapping[str, Any],
    key: str,
    default: Any = None,
    *,
    lo: float | None = None,
    hi: float | None = None,
) -> Any:
    value = body.get(key)
    if value is None:
        return default
    if type(value) not in (int, float):
        raise _type_error(key, "a number", value)
    if lo is not None and value < lo:
        raise BadRequest(f"'{key}' must be >= {lo}, got {value}", param=key)
    if hi is not None and value > hi:
        raise BadRequest(f"'{key}' must be <= {hi}, got {value}", param=key)
    return float(value)


def get_bool(body: Mapping[str, Any], key: str, default: Any = False) -> Any:
    value = body.get(key)
    if value is None:
        return default
    if type(value) is not bool:
        raise _type_error(key, "a boolean", value)
    return value


def get_str(body: Mapping[str, Any], key: str, default: Any = None) -> Any:
    value = body.get(key)
    if value is None:
        return default
    if type(value) is not str:
        raise _type_error(key, "a string", value)
    return value


def get_dict(body: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is None:
        return None
    if type(value) is not dict:
        raise _type_error(key, "an object", value)
    return value


def int_list(value: Any, key: str) -> list[int]:
    """A JSON array of non-negative integers (token ids)."""
    if type(value) is not list:
        raise _type_error(key, "an array of integers", value)
    for v in value:
        if type(v) is not int or v < 0:
            raise BadRequest(f"'{key}' must hold non-negative integers, found {v!r:.40}", param=key)
    return value


def stop_strings(body: Mapping[str, Any], key: str = "stop") -> tuple[str, ...]:
    """``stop``: a string, an array of strings, or null."""
    value = body.get(key)
    if value is None:
        return ()
    if type(value) is str:
        return (value,) if value else ()
    if type(value) is list and all(type(s) is str for s in value):
        return tuple(s for s in value if s)
    raise _type_error(key, "a string or an array of strings", value)


def optional_int_list(body: Mapping[str, Any], key: str) -> tuple[int, ...]:
    value = body.get(key)
    if value is None:
        return ()
    return tuple(int_list(value, key))

