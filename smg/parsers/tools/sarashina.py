"""Sarashina tool calls: a Python-literal list of dicts, after ``<|tool_calls|>``.

``<|tool_calls|>[{'name': 'get_weather', 'arguments': {'city': 'Tokyo'}}]``. The marker
is a special token that detokenization often strips, so a list of dicts that opens the
output (only whitespace before it) is a call list too. Values are Python literals
(single quotes, ``True``/``None``), read with ``ast.literal_eval``; arguments become
JSON. A list whose first dict is a call streams its calls one dict at a time; any other
list is decided when its closing bracket arrives: if it holds no ``{'name': ...}`` dict
it was ordinary text and is kept as content. Output cut off inside the list yields the
dicts that were complete.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass

from smg.parsers.core import Snapshot, SnapshotBuilder
from smg.parsers.scan import held_suffix
from smg.parsers.tools.base import MarkerToolParser, skip_ws
from smg.parsers.tools.pythonic import jsonable

__all__ = ["SarashinaParser"]

MARKER = "<|tool_calls|>"
_BARE_START = re.compile(r"\[\s*\{")
_MAYBE_BARE = re.compile(r"\[?\s*\Z")
_TOP, _AFTER, _IN_LIST = "top", "after_list", "in_list"
# the same, where the content before ends in text (the whitespace after a list is kept)
_TOP_TEXT, _AFTER_JOIN, _IN_LIST_JOIN = "top_text", "after_list_join", "in_list_join"


def _top(b: SnapshotBuilder) -> str:
    b.tail = b.ends_in_text(b.tail)
    return _TOP_TEXT if b.tail else _TOP


def _after(b: SnapshotBuilder) -> str:
    return _AFTER_JOIN if b.tail else _AFTER


def _in_list(b: SnapshotBuilder) -> str:
    return _IN_LIST_JOIN if b.tail else _IN_LIST


def python_literal_end(text: str, i: int) -> int | None:
    """End offset of the bracketed Python literal at ``text[i]`` (None if incomplete)."""
    depth = 0
    quote = None
    esc = False
    for j in range(i, len(text)):
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
        elif c in "[{(":
            depth += 1
        elif c in "]})":
            depth -= 1
            if depth == 0:
                return j + 1
    return None


def _call_of(item: object) -> tuple[str, str] | None:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        return None
    args = jsonable(item.get("arguments", {}))
    return item["name"], json.dumps(args, ensure_ascii=False)


def _literal_call(text: str) -> tuple[str, str] | None:
    try:
        return _call_of(ast.literal_eval(text))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _skip_sep(text: str, j: int) -> int:
    n = len(text)
    while j < n and (text[j].isspace() or text[j] == ","):
        j += 1
    return j


def _complete_dicts(text: str, j: int) -> list[tuple[str, str]]:
    """The calls among the complete dicts of a list cut off before its ``]``."""
    calls = []
    n = len(text)
    while True:
        while j < n and (text[j].isspace() or text[j] == ","):
            j += 1
        if j >= n or text[j] != "{":
            return calls
        end = python_literal_end(text, j)
        if end is None:
            return calls
        try:
            call = _call_of(ast.literal_eval(text[j:end]))
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            call = None
        if call:
            calls.append(call)
        j = end


@dataclass(frozen=True)
class SarashinaParser(MarkerToolParser):
    name: str = "sarashina"
    starts = (MARKER,)

    def has_markers(self, text: str) -> bool:
        return MARKER in text or bool(_BARE_START.match(text.lstrip()))

    def fast(self, chunk: str, state: object) -> tuple[str, str] | None:
        if state not in (_TOP, _TOP_TEXT) or "<" in chunk or not chunk:
            return None
        if chunk[-1].isspace() != (state == _TOP):
            return None  # the chunk changes whether the content ends in text
        return chunk, ""

    def parse(self, text: str, final: bool, state: object = None) -> Snapshot:
        b = SnapshotBuilder()
        n = len(text)
        pos = 0
        # b.tail: the content before ends in text, so the whitespace after a call list
        # separates it from the text that follows and is kept
        b.tail = state in (_TOP_TEXT, _AFTER_JOIN, _IN_LIST_JOIN)
        if state in (_IN_LIST, _IN_LIST_JOIN):  # between two calls of a call list
            end = self._rest_of_list(text, 0, b, final)
            if end is None:
                return b.build()
            pos, state = end, _after(b)
            b.safe(pos, state)
        if state is None:  # the very start: a bare list may open the output
            j = skip_ws(text, 0)
            if _BARE_START.match(text, j):
                end = self._list(text, j, b, final)
                if end is None:
                    return b.build()
                pos, state = end, (_after(b) if b.calls else _top(b))
                b.safe(pos, state)
            elif not final and _MAYBE_BARE.match(text, j):
                return b.build()
        while True:
            if state in (_AFTER, _AFTER_JOIN):
                j = skip_ws(text, pos)
                if j == n:
                    if final:
                        b.safe(n, state)
                    return b.build()
                if state == _AFTER_JOIN and not text.startswith(MARKER, j):
                    if not final and MARKER.startswith(text[j:]):
                        return b.build()  # a next list may be starting
                    b.content(text[pos:j])
                pos = j
            i = text.find(MARKER, pos)
            if i == -1:
                keep = 0 if final else held_suffix(text, (MARKER,), pos)
                b.content(text[pos : n - keep])
                b.safe(n - keep, _top(b))
                return b.build()
            b.content(text[pos:i])
            b.tail = b.ends_in_text(b.tail)
            b.safe(i, _top(b))
            j = skip_ws(text, i + len(MARKER))
            if j >= n:
                if final:
                    b.safe(n, _after(b))
                return b.build()
            if text[j] not in "[{":
                pos, state = j, _after(b)
                continue
            ncalls = len(b.calls)
            end = self._list(text, j, b, final)
            if end is None:
                return b.build()
            pos, state = end, (_after(b) if len(b.calls) > ncalls else _top(b))
            b.safe(pos, state)

    def _list(self, text: str, j: int, b: SnapshotBuilder, final: bool) -> int | None:
        """Decide the list (or single dict) at ``text[j]``; return its end.

        A list whose first dict is a call is a call list: its calls are sent one by
        one, with a safe point after each. Otherwise it is decided when it closes."""
        if text[j] == "[":
            k = _skip_sep(text, j + 1)
            first_end = python_literal_end(text, k) if k < len(text) and text[k] == "{" else None
            call = _literal_call(text[k:first_end]) if first_end is not None else None
            if call:
                b.call(*call, done=True)
                b.safe(first_end, _in_list(b))
                return self._rest_of_list(text, first_end, b, final)
        end = python_literal_end(text, j)
        if end is None:
            if not final:
                return None
            inner = j + 1 if text[j] == "[" else j
            calls = _complete_dicts(text, inner)
            if not calls:
                b.content(text[j:])
            for name, args in calls:
                b.call(name, args, done=True)
            return len(text)
        try:
            value = ast.literal_eval(text[j:end])
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            value = None
        items = value if isinstance(value, list) else [value]
        calls = [c for c in map(_call_of, items) if c]
        if not calls:
            b.content(text[j:end])
        for name, args in calls:
            b.call(name, args, done=True)
        return end

    def _rest_of_list(self, text: str, j: int, b: SnapshotBuilder, final: bool) -> int | None:
        """The dicts after the first call of a call list, through its ``]``."""
        n = len(text)
        while True:
            j = _skip_sep(text, j)
            if j >= n:
                return n if final else None
            if text[j] == "]":
                return j + 1
            if text[j] != "{":
                return j  # not a dict: the list ends here, the rest is text
            end = python_literal_end(text, j)
            if end is None:
                return n if final else None  # a dict cut off at max_tokens is dropped
            call = _literal_call(text[j:end])
            if call:
                b.call(*call, done=True)
            j = end
            b.safe(j, _in_list(b))
