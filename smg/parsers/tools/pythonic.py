"""Pythonic tool calls (Llama 4 and others): ``[f(a=1, b="x"), g()]``.

The list opens the output, or is wrapped in ``<|python_start|>``/``<|python_end|>``
anywhere (Llama 4); text before a wrapped list and after any list is content. Keyword values are
Python literals, converted with ``ast.literal_eval`` and written as JSON one complete
keyword at a time.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import ClassVar

from smg.parsers.core import Snapshot, SnapshotBuilder
from smg.parsers.scan import held_suffix
from smg.parsers.tools.base import ArgsBuilder, MarkerToolParser, skip_ws

__all__ = ["PythonicParser", "jsonable"]

_START = re.compile(r"\[\s*[A-Za-z_][\w.]*\s*\(")
_MAYBE_START = re.compile(r"\[\s*[A-Za-z_]?[\w.]*\s*\Z")
_NAME = re.compile(r"\s*([A-Za-z_][\w.]*)\s*\(")
_KEY = re.compile(r"\s*([A-Za-z_]\w*)\s*=\s*")
_WRAP_OPEN, _WRAP_CLOSE = "<|python_start|>", "<|python_end|>"


def _value_end(text: str, j: int) -> int | None:
    """Offset of the ``,`` or ``)`` that ends the Python literal starting at ``j``."""
    depth = 0
    quote = None
    esc = False
    n = len(text)
    while j < n:
        c = text[j]
        if quote:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                return j if c == ")" else None
            depth -= 1
        elif c == "," and depth == 0:
            return j
        j += 1
    return None


def jsonable(value: object) -> object:
    """A Python literal's value as JSON data: sets and tuples become lists, bytes and
    other non-JSON values their text, dict keys strings."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, dict):
        return {k if isinstance(k, str) else json.dumps(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _literal(raw: str) -> object:
    try:
        return jsonable(ast.literal_eval(raw.strip()))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return raw.strip()


@dataclass(frozen=True)
class PythonicParser(MarkerToolParser):
    name: str = "pythonic"
    WRAP_OPEN: ClassVar[str] = _WRAP_OPEN  # the wrapper a list may sit in (Llama 4)
    WRAP_CLOSE: ClassVar[str] = _WRAP_CLOSE

    def has_markers(self, text: str) -> bool:
        return bool(_START.match(text.lstrip().removeprefix(self.WRAP_OPEN).lstrip()))

    def parse(self, text: str, final: bool, state: object = None) -> Snapshot:
        b = SnapshotBuilder()
        n = len(text)
        head = 0  # where the text that is not content starts
        j = skip_ws(text, 0)
        if not text.startswith(self.WRAP_OPEN, j) and not _START.match(text, j):
            if not final and (j >= n or _MAYBE_START.match(text, j) or self.WRAP_OPEN.startswith(text[j:])):
                return b.build()  # may still become a call list
            # Text first; a wrapped list may follow it.
            head = text.find(self.WRAP_OPEN, j)
            if head == -1:
                keep = 0 if final else held_suffix(text, (self.WRAP_OPEN,), j)
                b.content(text[: n - keep])
                return b.build()
            b.content(text[:head])
            j = head
        if text.startswith(self.WRAP_OPEN, j):
            j = skip_ws(text, j + len(self.WRAP_OPEN))
        if not _START.match(text, j):
            if not final and (j >= n or _MAYBE_START.match(text, j)):
                return b.build()
            b.content(text[head:])
            return b.build()
        end = self._calls(text, j + 1, b, final)
        if end is not None:  # after the list: an optional wrapper end, then text
            k = skip_ws(text, end)
            if text.startswith(self.WRAP_CLOSE, k):
                k += len(self.WRAP_CLOSE)
            elif not final and self.WRAP_CLOSE.startswith(text[k:]):
                return b.build()
            rest = text[skip_ws(text, k) :]
            if rest and head and not text[head - 1].isspace():
                rest = text[k:]  # the whitespace separates the text before and after
            b.content(rest)
        return b.build()

    def _calls(self, text: str, j: int, b: SnapshotBuilder, final: bool) -> int | None:
        """Add the calls of the list whose ``[`` precedes ``j``; return the offset after
        its ``]`` (None while it is open)."""
        n = len(text)
        while True:
            m = _NAME.match(text, j)
            if m is None:
                return None
            args = ArgsBuilder(b.call(m.group(1)))
            j = m.end()
            while True:
                j = skip_ws(text, j)
                if j < n and text[j] == ")":
                    args.close()
                    j += 1
                    break
                km = _KEY.match(text, j)
                end = _value_end(text, km.end()) if km else None
                if km is None or end is None:
                    if final:
                        args.close()
                    return None
                args.add(km.group(1), _literal(text[km.end() : end]))
                j = end + 1 if text[end] == "," else end
            j = skip_ws(text, j)
            if j < n and text[j] == ",":
                j += 1
            elif j < n and text[j] == "]":
                return j + 1
            else:
                return None
