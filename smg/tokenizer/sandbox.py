"""The chat-template sandbox: jinja2's immutable sandbox with cheap checks for plain data.

Chat templates read little besides dicts, lists and strings (``message.role``,
``loop.first``, ``content.strip()``), and the stock sandbox pays for every one of them:
``message.role`` first fails ``getattr(dict, "role")`` (an exception), then reads the
key; ``loop.first`` runs ``is_safe_attribute``, whose ``modifies_known_mutable`` walks
four ABC ``isinstance`` checks; every call asks the callable for ``unsafe_callable``
and ``alters_data`` (two more failing lookups) before ``Context.call`` inspects it.

``ChatSandbox`` keeps the stock rules and only short-cuts cases whose answer is known
without running them:

- an attribute of a plain ``dict`` that is not an attribute of ``dict`` itself is a key
  lookup (Jinja prefers the attribute: ``message.items`` stays the method, and names
  like ``update`` still go through the full check and fail);
- for a fixed set of plain types, whether an attribute is safe depends only on the type
  and the name (the stock check reads nothing else), so the stock answer is remembered
  per (type, name);
- a bound method of a builtin type (``'a'.strip``, ``d.get``), a template macro or
  ``namespace`` can carry neither an ``unsafe`` mark nor a ``pass_context`` flag, so
  the call goes straight to it. Getting hold of a mutating method (``list.append``)
  already fails at the attribute check, and ``str.format`` is replaced by the
  sandboxed formatter there too;
- a template's globals are a plain dict, not a ChainMap over the environment's.

Everything else (other types and callables, ``str.format``, a first look at any type's
attribute) takes the stock path unchanged; tests/unit/tokenizer/test_template_sandbox.py
compares the two environments on generated conversations.
"""

from __future__ import annotations

import types
from collections.abc import MutableMapping
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

__all__ = ["ChatSandbox"]

_DICT_ATTRS = frozenset(dir(dict))
# Types whose attribute safety the stock check decides from (type, name) alone.
_PLAIN_TYPES = frozenset(
    {dict, list, tuple, str, int, float, bool, type(None), LoopContext, Namespace}
)
# Callables that cannot be marked unsafe or pass_context: bound methods of builtin types
# and template macros (Namespace, the class, is checked by identity).
_PLAIN_CALLABLE_TYPES = frozenset({types.BuiltinMethodType, Macro})
# never remembered: the stock getattr swaps str.format for the sandboxed formatter
_FORMAT_METHODS = frozenset({"format", "format_map"})
_MAX_REMEMBERED = 4096  # Namespace attribute names can come from data: keep the memo bounded


class ChatSandbox(ImmutableSandboxedEnvironment):
    """``ImmutableSandboxedEnvironment`` with fast paths for the plain types chat
    templates use; the same answers as the stock environment for every access, except
    that an unsafe attribute raises ``SecurityError`` at once instead of rendering as
    an undefined value."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._safe_attrs: dict[tuple[type, str], bool] = {}

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        # fail at once (the stock sandbox renders an unsafe attribute as empty)
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} is not allowed"
        )

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and type(attribute) is str and attribute not in _DICT_ATTRS:
            # getattr(obj, attribute) would raise: the stock path reads the key next
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        if self._safe_attrs.get((type(obj), attribute)):
            # a plain type's attribute found safe before: the stock path minus the check
            try:
                return getattr(obj, attribute)
            except AttributeError:
                try:
                    return obj[attribute]
                except (TypeError, LookupError):
                    return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        cls = type(obj)
        if cls not in _PLAIN_TYPES:
            return super().is_safe_attribute(obj, attr, value)
        key = (cls, attr)
        safe = self._safe_attrs.get(key)
        if safe is None:
            safe = super().is_safe_attribute(obj, attr, value)
            if attr not in _FORMAT_METHODS and len(self._safe_attrs) < _MAX_REMEMBERED:
                self._safe_attrs[key] = safe
        return safe

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        # A plain dict instead of a ChainMap over the environment's globals: every
        # render copies the globals into its context, and iterating a ChainMap costs
        # more than the rest of a short render. The environment's globals are set up
        # before any template is compiled and not changed after.
        return {**self.globals, **(d or {})}

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        if type(__obj) in _PLAIN_CALLABLE_TYPES or __obj is Namespace:
            # what Context.call does for a callable without a pass_* flag
            kwargs.pop("_block_vars", None)
            kwargs.pop("_loop_vars", None)
            try:
                return __obj(*args, **kwargs)
            except StopIteration:
                return __self.undefined(
                    "value was undefined because a callable raised a StopIteration exception"
                )
        return super().call(__context, __obj, *args, **kwargs)
