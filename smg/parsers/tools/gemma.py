"""Gemma 4 and FunctionGemma tool calls: ``call:NAME{key:value,...}`` between markers.

Gemma 4: ``<|tool_call>call:get_weather{city:<|"|>Paris<|"|>,n:3}<tool_call|>``;
FunctionGemma: ``<start_function_call>call:get_weather{city:<escape>Paris<escape>}
<end_function_call>``. Keys are bare; strings sit between the quote token (``<|"|>`` or
``<escape>``); objects ``{...}`` and arrays ``[...]`` nest; other values are bare
literals (numbers, ``true``/``false``/``null``), typed by the tool's schema at the top
level. A call is complete at its end marker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from smg.parsers.tools.base import MarkerToolParser, TextEnd, typed_value

__all__ = ["FunctionGemmaParser", "Gemma4Parser"]


class _Bare(str):
    """A value written without quotes (typed later)."""


def _literal(raw: _Bare) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return str(raw)


def _deep(value: Any) -> Any:
    if isinstance(value, _Bare):
        return _literal(value)
    if isinstance(value, dict):
        return {k: _deep(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep(v) for v in value]
    return value


class _Reader:
    def __init__(self, text: str, quote: str) -> None:
        self.s, self.q, self.i = text, quote, 0

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1

    def value(self) -> Any:
        self.ws()
        s, i = self.s, self.i
        if s.startswith(self.q, i):
            end = s.find(self.q, i + len(self.q))
            if end == -1:
                raise ValueError("unterminated string")
            self.i = end + len(self.q)
            return s[i + len(self.q) : end]
        if i < len(s) and s[i] == "{":
            return self.obj()
        if i < len(s) and s[i] == "[":
            self.i += 1
            items: list[Any] = []
            while True:
                self.ws()
                if self.i < len(s) and s[self.i] == "]":
                    self.i += 1
                    return items
                items.append(self.value())
                self.ws()
                if self.i < len(s) and s[self.i] == ",":
                    self.i += 1
                elif self.i >= len(s) or s[self.i] != "]":
                    raise ValueError("bad array")
        j = i
        while j < len(s) and s[j] not in ",}]" and not s.startswith(self.q, j):
            j += 1
        self.i = j
        return _Bare(s[i:j].strip())

    def obj(self) -> dict[str, Any]:
        s = self.s
        self.i += 1  # "{"
        out: dict[str, Any] = {}
        while True:
            self.ws()
            if self.i < len(s) and s[self.i] == "}":
                self.i += 1
                return out
            colon = s.find(":", self.i)
            if colon == -1:
                raise ValueError("no key")
            key = s[self.i : colon].strip()
            if key.startswith(self.q) and key.endswith(self.q):
                key = key[len(self.q) : -len(self.q)]
            self.i = colon + 1
            out[key] = self.value()
            self.ws()
            if self.i < len(s) and s[self.i] == ",":
                self.i += 1
            elif self.i >= len(s) or s[self.i] != "}":
                raise ValueError("bad object")


@dataclass(frozen=True)
class Gemma4Parser(MarkerToolParser):
    name: str = "gemma4"
    starts = ("<|tool_call>",)
    END: ClassVar[str] = "<tool_call|>"
    QUOTE: ClassVar[str] = '<|"|>'

    def region(self, text, i, marker, b, final):
        n = len(text)
        j = i + len(marker)
        head = text[j : j + 5]
        if not "call:".startswith(head) and not head.startswith("call:"):
            return TextEnd(j)  # not a call: the marker was written in prose
        stop = self._end(text, j)
        if stop == -1:
            return n if final else None  # complete only at its end marker
        body = text[j:stop].strip()
        brace = body.find("{")
        name = (body[5:brace] if brace != -1 else body[5:]).strip()
        if not name:
            return TextEnd(stop + len(self.END))
        args: dict[str, Any] = {}
        if brace != -1:
            try:
                args = _Reader(body[brace:], self.QUOTE).obj()
            except ValueError:
                args = {}
        typed = {
            k: typed_value(v, self.schema_type(name, k)) if isinstance(v, _Bare) and self.schema_type(name, k) else _deep(v)
            for k, v in args.items()
        }
        b.call(name, json.dumps(typed, ensure_ascii=False), done=True)
        return stop + len(self.END)

    def _end(self, text: str, j: int) -> int:
        """The end marker after ``j`` that is not inside a quoted string (-1: none yet)."""
        in_str = False
        k = j
        q, end = self.QUOTE, self.END
        while k < len(text):
            if text.startswith(q, k):
                in_str = not in_str
                k += len(q)
            elif not in_str and text.startswith(end, k):
                return k
            else:
                k += 1
        return -1


@dataclass(frozen=True)
class FunctionGemmaParser(Gemma4Parser):
    name: str = "function_gemma"
    starts = ("<start_function_call>",)
    END: ClassVar[str] = "<end_function_call>"
    QUOTE: ClassVar[str] = "<escape>"
