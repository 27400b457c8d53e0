"""The shape every marker-delimited tool-call format shares.

Plain text runs until a start marker; the *region* that follows holds one or more calls
and ends at an end marker (or at the end of the output). ``MarkerToolParser.parse``
scans the top level, holds back a possible partial start marker, and hands each region
to the format's ``region()``. Whitespace between regions, and around them at the start
or end of the output, is not content; between text before a section and text after it,
it is kept (``Checking.`` + call + ``\nDone.`` is ``Checking.\nDone.``).

Argument text is emitted as a JSON object text. Formats that write JSON (hermes, kimi,
deepseek, ...) pass the model's JSON through verbatim, so any prefix of it is stable.
Formats that write one parameter at a time (XML-style) build ``{"k": v, ...}`` one
*complete* parameter at a time; values are typed with the tool's JSON schema when the
request gave tools, else kept as strings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from smg.parsers.core import CallSnapshot, Parser, Snapshot, SnapshotBuilder
from smg.parsers.scan import find_first, held_suffix, inside_json_string, json_value_end

_AFTER_REGION = "after_region"
_AFTER_JOIN = "after_region_join"  # after a section that followed text
_TEXT = "text"  # at the top level, the content so far ends in non-whitespace


class TextEnd(int):
    """What ``region`` returns when the marker did not open a call section: the text
    from the marker up to this offset is content, kept as written."""


def _content(b: SnapshotBuilder, seg: str, tail: bool) -> bool:
    """Add ``seg`` as content; return whether the content now ends in non-whitespace."""
    if not seg:
        return tail
    b.content(seg)
    return not seg[-1].isspace()


__all__ = ["ArgsBuilder", "MarkerToolParser", "TextEnd", "scan_call_object", "typed_value"]


@dataclass(frozen=True)
class MarkerToolParser(Parser):
    tools: tuple[Mapping[str, Any], ...] = ()

    starts: ClassVar[tuple[str, ...]] = ()

    def with_tools(self, tools: Sequence[Mapping[str, Any]] | None) -> MarkerToolParser:
        clone = type(self)(tools=tuple(tools or ()))
        return clone

    def has_markers(self, text: str) -> bool:
        return find_first(text, self.starts)[0] != -1

    def fast(self, chunk: str, state: object) -> tuple[str, str] | None:
        # At the top level, a chunk holding no first character of a start marker is
        # content (if it leaves the state as it was: whether the content ends in text).
        if state not in (None, _TEXT) or not chunk or not self.starts:
            return None
        if type(self).parse is not MarkerToolParser.parse or chunk[-1].isspace() != (state is None):
            return None
        firsts = {m[0] for m in self.starts}
        if any(c in firsts for c in chunk):
            return None
        return chunk, ""

    def region(self, text: str, i: int, marker: str, b: SnapshotBuilder, final: bool) -> int | None:
        """Parse the region starting at ``text[i]`` (``marker`` starts there); add its
        calls to ``b``; return the offset after it, or None while it is incomplete."""
        raise NotImplementedError

    def parse(self, text: str, final: bool, state: object = None) -> Snapshot:
        b = SnapshotBuilder()
        pos = 0
        n = len(text)
        # tail: the content so far ends in non-whitespace, so the whitespace between a
        # call section and the text after it separates two pieces of text: it is kept.
        tail = state in (_TEXT, _AFTER_JOIN)
        after_region = state in (_AFTER_REGION, _AFTER_JOIN)
        join = state == _AFTER_JOIN
        while True:
            if after_region:
                j = pos
                while j < n and text[j].isspace():
                    j += 1
                if j == n:
                    if final:
                        b.safe(n)
                    return b.build()
                if find_first(text, self.starts, j)[0] != j:
                    if not final and held_suffix(text, self.starts, j) == n - j:
                        return b.build()  # a next section may be starting
                    if join:
                        b.content(text[pos:j])
                pos = j
                after_region = False
            i, marker = find_first(text, self.starts, pos)
            if i == -1:
                keep = 0 if final else held_suffix(text, self.starts, pos)
                tail = _content(b, text[pos : n - keep], tail)
                b.safe(n - keep, _TEXT if tail else None)
                return b.build()
            tail = _content(b, text[pos:i], tail)
            b.safe(i, _TEXT if tail else None)
            ncalls = len(b.calls)
            end = self.region(text, i, marker or "", b, final)
            if end is None:
                return b.build()
            if isinstance(end, TextEnd):
                # no call in it (a marker written in prose, an empty pair): it is text
                tail = _content(b, text[i:end], tail)
                pos = end
                b.safe(pos, _TEXT if tail else None)
                continue
            for call in b.calls:
                call.done = True
            pos = end
            join = tail
            b.safe(pos, _AFTER_JOIN if join else _AFTER_REGION)
            after_region = True

    # helpers for subclasses ------------------------------------------------------

    def schema_type(self, tool_name: str, param: str) -> object:
        """The JSON-schema type of a parameter: a name, a list of names (a union, from
        ``type: [...]`` or ``anyOf``/``oneOf``), or None when unknown."""
        for tool in self.tools:
            fn = tool.get("function", tool)
            if fn.get("name") == tool_name:
                props = (fn.get("parameters") or {}).get("properties") or {}
                return _spec_type(props.get(param) or {})
        return None


def _spec_type(spec: Mapping[str, Any]) -> object:
    t = spec.get("type")
    if t is not None:
        return t
    for key in ("anyOf", "oneOf"):
        if isinstance(spec.get(key), list):
            types: list[str] = []
            for sub in spec[key]:
                st = _spec_type(sub) if isinstance(sub, Mapping) else None
                types.extend(st if isinstance(st, list) else [st] if isinstance(st, str) else [])
            return types or None
    return None


_JSON_TYPES = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
}


def typed_value(raw: str, schema_type: object) -> Any:
    """Convert a parameter written as text to the type its schema asks for.

    A union (``["string", "null"]``, ``anyOf``) is converted by the whole union: the
    text read as JSON when that value is of one of its types (``null`` is JSON null
    when the union admits null), else the text itself when it admits strings."""
    if isinstance(schema_type, list):
        types = [t for t in schema_type if isinstance(t, str)]
        if len(types) == 1:
            return typed_value(raw, types[0])
        try:
            value = json.loads(raw.strip())
        except ValueError:
            value = _MISSING
        if value is not _MISSING and any(_JSON_TYPES.get(t, lambda v: False)(value) for t in types if t != "string"):
            return value
        if "string" in types or not types:
            return raw
        for t in types:
            if t != "null":
                return typed_value(raw, t)
        return raw
    return _typed_one(raw, schema_type if isinstance(schema_type, str) else None)


_MISSING = object()


def _typed_one(raw: str, schema_type: str | None) -> Any:
    if schema_type in (None, "string"):
        return raw
    try:
        if schema_type == "integer":
            return int(raw)
        if schema_type == "number":
            v = float(raw)
            return int(v) if v.is_integer() and "." not in raw and "e" not in raw.lower() else v
        if schema_type == "boolean":
            low = raw.strip().lower()
            if low in ("true", "false"):
                return low == "true"
            return raw
        if schema_type == "null":
            return None if raw.strip() == "null" else raw
        return json.loads(raw)
    except ValueError:
        return raw


class ArgsBuilder:
    """Builds ``{"k": v, ...}`` for one call, one complete parameter at a time."""

    def __init__(self, call: CallSnapshot) -> None:
        self.call = call
        self.count = 0
        call.arguments = "{"

    def add(self, key: str, value: Any) -> None:
        sep = ", " if self.count else ""
        self.call.arguments += sep + json.dumps(key, ensure_ascii=False) + ": " + json.dumps(
            value, ensure_ascii=False
        )
        self.count += 1

    def close(self) -> None:
        self.call.arguments += "}"
        self.call.done = True


@dataclass
class ObjectScan:
    name: str | None = None
    args_start: int | None = None
    args_end: int | None = None
    end: int | None = None  # offset after the closing brace


_NAME_KEYS = ("name", "tool_name")
_ARG_KEYS = ("arguments", "parameters")


def scan_call_object(text: str, i: int, arg_keys: Sequence[str] = _ARG_KEYS) -> ObjectScan:
    """Scan a (possibly partial) ``{"name": ..., "arguments": {...}}`` at ``text[i]``."""
    out = ObjectScan()
    n = len(text)
    j = i + 1
    while True:
        while j < n and text[j] in " \t\r\n,":
            j += 1
        if j >= n:
            return out
        if text[j] == "}":
            out.end = j + 1
            return out
        if text[j] != '"':
            return out  # not a call object; stop here
        kend = json_value_end(text, j)
        if kend is None:
            return out
        try:
            key = json.loads(text[j:kend])
        except ValueError:
            return out
        j = kend
        while j < n and text[j] in " \t\r\n":
            j += 1
        if j >= n or text[j] != ":":
            return out
        j += 1
        while j < n and text[j] in " \t\r\n":
            j += 1
        if j >= n:
            return out
        vend = json_value_end(text, j)
        if key in arg_keys and out.args_start is None:
            out.args_start = j
            out.args_end = vend
        elif key in _NAME_KEYS and vend is not None:
            try:
                value = json.loads(text[j:vend])
            except ValueError:
                value = None
            if isinstance(value, str):
                out.name = value
        if vend is None:
            return out
        j = vend


def emit_object_call(
    text: str,
    i: int,
    b: SnapshotBuilder,
    final: bool,
    hold: Sequence[str] = (),
    arg_keys: Sequence[str] = _ARG_KEYS,
    scan: ObjectScan | None = None,
) -> int | None:
    """Add the call written as a JSON object at ``text[i]``; return its end or None.

    ``scan`` is ``scan_call_object(text, i, arg_keys)`` when the caller has it already."""
    scan = scan or scan_call_object(text, i, arg_keys)
    n = len(text)
    if scan.name is None:
        return scan.end if scan.end is not None else (n if final else None)
    call = b.call(scan.name)
    if scan.args_start is None:
        if scan.end is not None or final:
            call.arguments = "{}"
    elif text[scan.args_start] == '"':
        if scan.args_end is not None:
            try:
                decoded = json.loads(text[scan.args_start : scan.args_end])
            except ValueError:
                decoded = ""
            call.arguments = decoded if isinstance(decoded, str) else json.dumps(decoded)
    elif scan.args_end is not None:
        call.arguments = text[scan.args_start : scan.args_end]
    else:
        keep = 0 if final else held_suffix(text, hold, scan.args_start)
        call.arguments = text[scan.args_start : n - keep]
    if scan.end is None:
        return n if final else None
    call.done = True
    return scan.end


def after_trailer(text: str, j: int, trailer: Sequence[str], final: bool) -> int | None:
    """The end of a section that ended at ``j``, past a ``trailer`` token (an EOS the
    model wrote out) when one follows; None while one may still be arriving."""
    k = skip_ws(text, j)
    for tok in trailer:
        if text.startswith(tok, k):
            return k + len(tok)
        if not final and k < len(text) and tok.startswith(text[k:]):
            return None
    if not final and trailer and k == len(text):
        return None  # the trailer may follow
    return j


def skip_ws(text: str, j: int) -> int:
    n = len(text)
    while j < n and text[j] in " \t\r\n":
        j += 1
    return j


def emit_raw_args_call(
    text: str, name: str, start: int, end_marker: str, b: SnapshotBuilder, final: bool
) -> int | None:
    """A call whose arguments are a bare JSON value from ``start`` up to ``end_marker``.

    Returns the offset after ``end_marker`` (or the end of text when final), else None.
    """
    n = len(text)
    call = b.call(name)
    j = skip_ws(text, start)
    # the first end marker not written inside a JSON string ends the call, even when
    # the JSON before it is not closed; a value closed before it is the arguments
    stop = text.find(end_marker, j)
    while stop != -1 and inside_json_string(text, j, stop):
        stop = text.find(end_marker, stop + 1)
    # only an object, array or string is read as a value (a bare word would end at
    # whatever delimiter comes next, which depends on how much text has arrived)
    vend = json_value_end(text, j) if j < n and text[j] in '{["' else None
    if vend is not None and stop != -1 and vend > stop:
        vend = None
    elif vend is not None:
        stop = text.find(end_marker, vend)
    if vend is not None:
        call.arguments = text[j:vend]
    elif stop != -1:
        call.arguments = text[j:stop].rstrip() or "{}"
    else:
        keep = 0 if final else held_suffix(text, (end_marker,), j)
        call.arguments = text[j : n - keep]
    if stop == -1:
        if final:
            call.done = True
            return n
        return None
    call.done = True
    return stop + len(end_marker)
