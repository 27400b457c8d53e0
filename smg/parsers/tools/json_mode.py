"""Calls written as bare JSON: the ``json`` format and Llama 3.1/3.2/3.3 (``llama3``).

``json`` (OpenAI-style JSON mode, and what a ``tool_choice``-constrained worker writes):
a call object ``{"name": ..., "arguments"|"parameters": {...}}`` or an array of them,
at the start of the output or after some prose. ``llama3``: ``<|python_tag|>`` then call
objects (``;``-separated), or call objects opening the output; JSON later in the text is
prose.

JSON that is not a call stays content, as written: an object with no ``name``, or (when
the request declared tools) one naming a tool the request does not have, so a JSON
answer is never swallowed. The JSON is held back while it is open, since only its name
decides; a call is complete when its object closes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from smg.parsers.core import Snapshot, SnapshotBuilder
from smg.parsers.scan import held_suffix, json_value_end
from smg.parsers.tools.base import MarkerToolParser, TextEnd, emit_object_call, scan_call_object, skip_ws

__all__ = ["JsonParser", "Llama3Parser", "tool_allowed"]

_TEXT, _AFTER, _AFTER_JOIN, _REST, _PRETAG = "text", "after", "after_join", "rest", "pretag"


def tool_allowed(tools: tuple[Mapping[str, Any], ...], name: str) -> bool:
    """Whether ``name`` is one of the request's tools (any name when it declared none)."""
    return not tools or any(t.get("function", t).get("name") == name for t in tools)


@dataclass(frozen=True)
class JsonParser(MarkerToolParser):
    name: str = "json"
    anywhere: ClassVar[bool] = True  # JSON after prose may be a call
    separators: ClassVar[str] = ","

    def has_markers(self, text: str) -> bool:
        return text.lstrip()[:1] in ("{", "[")

    def fast(self, chunk: str, state: object) -> tuple[str, str] | None:
        return None

    def _object(self, text: str, j: int, b: SnapshotBuilder, final: bool) -> int | None:
        """The object at ``text[j]``: a call (its end), text (``TextEnd``) or undecided."""
        scan = scan_call_object(text, j)
        if scan.name is not None and tool_allowed(self.tools, scan.name):
            return emit_object_call(text, j, b, final, scan=scan)
        end = json_value_end(text, j)
        if end is None:
            return TextEnd(len(text)) if final else None
        return TextEnd(end)

    def _value(self, text: str, j: int, b: SnapshotBuilder, final: bool) -> int | None:
        n = len(text)
        k = skip_ws(text, j + 1)
        if k < n and text[k] not in ('"}' if text[j] == "{" else "{"):
            return TextEnd(j + 1)  # no call can start here: the bracket is prose
        if text[j] == "{":
            return self._object(text, j, b, final)
        first = len(b.calls)
        if k < n and text[k] == "{":
            probe = SnapshotBuilder()
            end = self._object(text, k, probe, final)
            if end is not None and not isinstance(end, TextEnd):
                return self._call_list(text, k, b, final)
            if end is None and not final:
                return None
        elif k >= n and not final:
            return None
        del b.calls[first:]
        end = json_value_end(text, j)
        if end is None:
            return TextEnd(n) if final else None
        return TextEnd(end)

    def _call_list(self, text: str, j: int, b: SnapshotBuilder, final: bool) -> int | None:
        """An array whose first element is a call: its calls, through its ``]``."""
        n = len(text)
        while True:
            while j < n and (text[j].isspace() or text[j] == ","):
                j += 1
            if j >= n:
                return n if final else None
            if text[j] == "]":
                return j + 1
            if text[j] != "{":
                return j  # not an object: the list ends here
            end = self._object(text, j, b, final)
            if end is None:
                return None
            j = int(end)

    def parse(self, text: str, final: bool, state: object = None) -> Snapshot:
        b = SnapshotBuilder()
        n = len(text)
        if state == _REST:
            b.content(text)
            b.safe(n, _REST)
            return b.build()
        pos = 0
        tail = state == _TEXT
        lead = state is None  # nothing but whitespace before: a value here may be a call
        after = state in (_AFTER, _AFTER_JOIN)
        join = state == _AFTER_JOIN
        while True:
            if after:
                j = pos
                while j < n and (text[j].isspace() or text[j] in self.separators):
                    j += 1
                if j == n:
                    if final:
                        b.safe(n)
                    return b.build()
                if text[j] not in "[{":
                    if join and not text[pos:j].strip():
                        b.content(text[pos:j])
                    if not self.anywhere:
                        b.content(text[j:])
                        b.safe(n, _REST)
                        return b.build()
                    j = pos = j
                    after = False
                    j = _next_value(text, pos)
                else:
                    pos = j
                    after = False
            elif lead:
                j = skip_ws(text, pos)
                if j == n:
                    if final:
                        b.content(text)
                    return b.build()
                if text[j] not in "[{":
                    if not self.anywhere:
                        b.content(text)
                        b.safe(n, _REST)
                        return b.build()
                    j = _next_value(text, pos)
            else:
                j = _next_value(text, pos)
            if j == -1:
                if text[pos:]:
                    b.content(text[pos:])
                    tail = not text[-1].isspace()
                b.safe(n, _TEXT if tail else (None if lead and not text[pos:] else _TEXT_WS))
                return b.build()
            if j > pos:
                seg = text[pos:j]
                b.content(seg)
                tail = not seg[-1].isspace()
                lead = lead and not seg.strip()
            b.safe(j, None if lead else (_TEXT if tail else _TEXT_WS))
            ncalls = len(b.calls)
            end = self._value(text, j, b, final)
            if end is None:
                return b.build()
            if isinstance(end, TextEnd) or len(b.calls) == ncalls:
                seg = text[j:end]
                b.content(seg)
                tail = not seg[-1].isspace() if seg else tail
                pos = int(end)
                lead = False
                if not self.anywhere:
                    b.content(text[pos:])
                    b.safe(n, _REST)
                    return b.build()
                b.safe(pos, _TEXT if tail else _TEXT_WS)
                continue
            for call in b.calls:
                call.done = True
            pos = int(end)
            join = tail
            lead = False
            after = True
            b.safe(pos, _AFTER_JOIN if join else _AFTER)


_TEXT_WS = "text_ws"  # after some text that ends in whitespace


def _next_value(text: str, pos: int) -> int:
    """Where the next ``{`` or ``[`` is (-1: none)."""
    i, k = text.find("{", pos), text.find("[", pos)
    if i == -1:
        return k
    return i if k == -1 else min(i, k)


@dataclass(frozen=True)
class Llama3Parser(JsonParser):
    """``<|python_tag|>`` followed by call objects (``;``-separated), or bare JSON."""

    name: str = "llama3"
    anywhere: ClassVar[bool] = False
    separators: ClassVar[str] = ",;"
    TAG: ClassVar[str] = "<|python_tag|>"

    def has_markers(self, text: str) -> bool:
        return self.TAG in text or super().has_markers(text)

    def parse(self, text: str, final: bool, state: object = None) -> Snapshot:
        n = len(text)
        if state is None:
            j = skip_ws(text, 0)
            if j < n and text[j] in "[{":  # bare JSON decides: a later tag is text
                return super().parse(text, final)
            if j == n and not final:
                return Snapshot()
            state = _PRETAG
        if state != _PRETAG:
            return super().parse(text, final, state)
        i = text.find(self.TAG)
        if i == -1:
            keep = 0 if final else held_suffix(text, (self.TAG,))
            b = SnapshotBuilder()
            b.content(text[: n - keep])
            b.safe(n - keep, _PRETAG)
            return b.build()
        start = i + len(self.TAG)
        sub = super().parse(text[start:], final, None)
        snap = Snapshot(text[:i] + sub.content, "", sub.calls, i, i, 0, 0, _PRETAG)
        if sub.safe_offset > 0:
            snap.safe_offset = start + sub.safe_offset
            snap.safe_content = i + sub.safe_content
            snap.safe_calls = sub.safe_calls
            snap.safe_state = sub.safe_state
        return snap
