"""Tool-call formats framed by channel tokens: Kimi-K3 XTML and Inkling TML.

Both wrap ordinary answer text in framing tokens that must not reach the user, so on
top of the call regions of ``MarkerToolParser`` they have *drop* markers: tokens (or
short headers) removed from the content, with the text around them kept verbatim.

Kimi-K3 (XTML)::

    <|open|>response<|sep|>TEXT<|close|>response<|sep|>
    <|open|>tools<|sep|>
      <|open|>call tool="NAME" index="1"<|sep|>
        <|open|>argument key="K" type="T"<|sep|>VALUE<|close|>argument<|sep|>
      <|close|>call<|sep|>
    <|close|>tools<|sep|>

Attribute values escape ``&`` and ``"`` as ``&amp;``/``&quot;``. A ``type="string"``
value is raw text; any other type is JSON (kept as text when it does not decode).

Inkling (TML): ``<|message_model|>HEADER<|content_invoke_tool_json|>{"name": "f",
"args": {...}}<|end_message|>``; plain text sits in ``<|content_text|>`` blocks. The
header (author or tool name) is metadata and dropped; ``<|content_invoke_tool_text|>``
frames cannot be expressed as OpenAI calls and are dropped whole, as are frames whose
JSON is not a call object or names a tool the request did not declare.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import ClassVar

from smg.parsers.core import Snapshot, SnapshotBuilder
from smg.parsers.scan import find_first, held_suffix
from smg.parsers.tools.base import ArgsBuilder, MarkerToolParser, emit_object_call, scan_call_object, skip_ws

__all__ = ["ChannelToolParser", "InklingToolParser", "KimiK3ToolParser"]

_AFTER_REGION = "after_region"
_AFTER_JOIN = "after_region_join"  # after a section that followed text
_TEXT = "text"  # the content so far ends in non-whitespace
IN_SECTION = "in_section"  # safe point between two calls of one section
IN_SECTION_JOIN = "in_section_join"  # the same, in a section that followed text


def _ends_in_text(seg: str, tail: bool) -> bool:
    return (not seg[-1].isspace()) if seg else tail


class ChannelToolParser(MarkerToolParser):
    """``MarkerToolParser`` plus ``drops``: markers whose ``region`` adds no call and
    whose surrounding text stays content as is (no whitespace is eaten after them).

    A region holding many calls may mark a safe point between two of them with state
    ``IN_SECTION``; parsing then resumes with ``region(text, 0, "", ...)``, so a long
    section is not re-read for every chunk."""

    drops: ClassVar[tuple[str, ...]] = ()

    def has_markers(self, text: str) -> bool:
        return find_first(text, self.starts)[0] != -1

    def fast(self, chunk: str, state: object) -> tuple[str, str] | None:
        if state not in (None, _TEXT) or "<" in chunk or not chunk:
            return None
        if chunk[-1].isspace() != (state is None):
            return None  # the chunk changes whether the content ends in text
        return chunk, ""

    def parse(self, text: str, final: bool, state: object = None) -> Snapshot:
        b = SnapshotBuilder()
        markers = self.starts + self.drops
        pos, n = 0, len(text)
        # tail: the content so far ends in non-whitespace; then the whitespace between
        # a call section and the text after it is kept (it separates two texts)
        tail = state in (_TEXT, _AFTER_JOIN, IN_SECTION_JOIN)
        b.tail = tail
        after_region = state in (_AFTER_REGION, _AFTER_JOIN)
        if state in (IN_SECTION, IN_SECTION_JOIN):
            end = self.region(text, 0, "", b, final)
            if end is None:
                return b.build()
            for call in b.calls:
                call.done = True
            pos, after_region = end, True
            b.safe(pos, _AFTER_JOIN if tail else _AFTER_REGION)
        while True:
            if after_region:
                j = skip_ws(text, pos)
                if j == n:
                    if final:
                        b.safe(n)
                    return b.build()
                if tail and find_first(text, self.starts, j)[0] != j:
                    if not final and held_suffix(text, markers, j) == n - j:
                        return b.build()  # a marker may be starting
                    b.content(text[pos:j])
                pos = j
                after_region = False
            i, marker = find_first(text, markers, pos)
            if i == -1:
                keep = 0 if final else held_suffix(text, markers, pos)
                tail = _ends_in_text(text[pos : n - keep], tail)
                b.content(text[pos : n - keep])
                b.safe(n - keep, _TEXT if tail else None)
                return b.build()
            tail = _ends_in_text(text[pos:i], tail)
            b.content(text[pos:i])
            b.safe(i, _TEXT if tail else None)
            b.tail = tail  # for a region's safe points inside its section
            end = self.region(text, i, marker or "", b, final)
            if end is None:
                return b.build()
            for call in b.calls:
                call.done = True
            pos = end
            after_region = marker in self.starts
            if after_region:
                b.safe(pos, _AFTER_JOIN if tail else _AFTER_REGION)
            else:
                b.safe(pos, _TEXT if tail else None)


# --- Kimi-K3 ---------------------------------------------------------------------

OPEN, CLOSE, SEP = "<|open|>", "<|close|>", "<|sep|>"
K3_TOOLS_OPEN, K3_TOOLS_CLOSE = f"{OPEN}tools{SEP}", f"{CLOSE}tools{SEP}"
K3_RESPONSE_OPEN, K3_RESPONSE_CLOSE = f"{OPEN}response{SEP}", f"{CLOSE}response{SEP}"
K3_MESSAGE_OPEN, K3_MESSAGE_CLOSE = f"{OPEN}message{SEP}", f"{CLOSE}message{SEP}"
K3_THINK_OPEN, K3_THINK_CLOSE = f"{OPEN}think{SEP}", f"{CLOSE}think{SEP}"
_K3_CALL_OPEN = re.compile(r"<\|open\|>\s*call\s+([^<]*?)<\|sep\|>")
_K3_ARG_OPEN = re.compile(r"<\|open\|>\s*argument\s+([^<]*?)<\|sep\|>")
_K3_CALL_CLOSE = f"{CLOSE}call{SEP}"
_K3_ARG_CLOSE = f"{CLOSE}argument{SEP}"
_ATTR = re.compile(r'(\w+)="([^"]*)"')


def xtml_attrs(raw: str) -> dict[str, str]:
    """``key="value"`` pairs of an XTML tag, unescaped (``&quot;`` then ``&amp;``)."""
    return {k: v.replace("&quot;", '"').replace("&amp;", "&") for k, v in _ATTR.findall(raw)}


def _starts_partially(text: str, j: int, *lits: str) -> bool:
    rest = text[j:]
    return any(lit.startswith(rest) or rest.startswith(lit) for lit in lits)


@dataclass(frozen=True)
class KimiK3ToolParser(ChannelToolParser):
    name: str = "kimi_k3"
    starts = (K3_TOOLS_OPEN,)
    drops = (K3_RESPONSE_OPEN, K3_RESPONSE_CLOSE, K3_MESSAGE_OPEN, K3_MESSAGE_CLOSE)

    def region(self, text, i, marker, b, final):
        if marker not in (K3_TOOLS_OPEN, ""):  # "" resumes inside the section
            return i + len(marker)
        n = len(text)
        j = i + len(marker)
        while True:
            j = skip_ws(text, j)
            if j >= n:
                return n if final else None
            if text.startswith(K3_TOOLS_CLOSE, j):
                return j + len(K3_TOOLS_CLOSE)
            m = _K3_CALL_OPEN.match(text, j)
            if m is None:
                if _starts_partially(text, j, K3_TOOLS_CLOSE, f"{OPEN}call "):
                    return n if final else None
                return j  # something else: the section ends here
            end = self._call(text, m, b, final)
            if end is None:
                return None
            j = end
            b.safe(j, IN_SECTION_JOIN if b.tail else IN_SECTION)

    def _call(self, text: str, m: re.Match[str], b: SnapshotBuilder, final: bool) -> int | None:
        n = len(text)
        name = xtml_attrs(m.group(1)).get("tool", "")
        # A call without a tool name is dropped (parsed into a builder nobody reads).
        args = ArgsBuilder((b if name else SnapshotBuilder()).call(name))
        j = m.end()
        while True:
            j = skip_ws(text, j)
            if j >= n:
                break
            if text.startswith(_K3_CALL_CLOSE, j):
                args.close()
                return j + len(_K3_CALL_CLOSE)
            am = _K3_ARG_OPEN.match(text, j)
            if am is None:
                if _starts_partially(text, j, _K3_CALL_CLOSE, f"{OPEN}argument "):
                    break
                j += 1  # stray text between arguments
                continue
            close = text.find(_K3_ARG_CLOSE, am.end())
            if close == -1:
                break
            attrs = xtml_attrs(am.group(1))
            args.add(attrs.get("key", ""), _k3_value(text[am.end() : close], attrs.get("type", "string")))
            j = close + len(_K3_ARG_CLOSE)
        if final:
            args.close()
            return n
        return None


def _k3_value(raw: str, typ: str) -> object:
    if typ == "string":
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


# --- Inkling -----------------------------------------------------------------------

INK_JSON = "<|content_invoke_tool_json|>"
INK_TEXT = "<|content_invoke_tool_text|>"
INK_END = "<|end_message|>"
INK_END_SAMPLING = "<|content_model_end_sampling|>"
INK_MESSAGE_MODEL = "<|message_model|>"
INK_CONTENT_TEXT = "<|content_text|>"
INK_THINKING = "<|content_thinking|>"
_INK_ENDS = (INK_END, INK_END_SAMPLING)


@dataclass(frozen=True)
class InklingToolParser(ChannelToolParser):
    name: str = "inkling"
    starts = (INK_JSON, INK_TEXT)
    drops = (INK_MESSAGE_MODEL, INK_CONTENT_TEXT, INK_THINKING, INK_END, INK_END_SAMPLING)

    def _allowed(self, name: str) -> bool:
        if not self.tools:
            return True
        return any(t.get("function", t).get("name") == name for t in self.tools)

    def region(self, text, i, marker, b, final):
        n = len(text)
        j = i + len(marker)
        if marker == INK_MESSAGE_MODEL:  # the header runs to the next control token
            k, _ = find_first(text, self.starts + self.drops, j)
            return k if k != -1 else (n if final else None)
        if marker in self.drops:
            return j
        if marker == INK_TEXT:
            return _discard_frame(text, j, final)
        j = skip_ws(text, j)
        if j >= n:
            return n if final else None
        if text[j] != "{":
            return _discard_frame(text, j, final)
        scan = scan_call_object(text, j, ("args",))
        if scan.name is None:
            if scan.end is None and not final:
                return None
            return _discard_frame(text, j, final)
        if not self._allowed(scan.name):
            return _discard_frame(text, j, final)
        end = emit_object_call(text, j, b, final, _INK_ENDS, ("args",), scan)
        if end is None or end >= n:
            return end
        k = skip_ws(text, end)
        for tok in _INK_ENDS:
            if text.startswith(tok, k):
                return k + len(tok)
        if not final and (k >= n or _starts_partially(text, k, *_INK_ENDS)):
            return None
        return k  # a complete call without its end token: what follows is text again


def _discard_frame(text: str, j: int, final: bool) -> int | None:
    """Skip a frame that is not a usable call, through its end token."""
    k, tok = find_first(text, _INK_ENDS, j)
    if k == -1:
        return len(text) if final else None
    return k + len(tok or "")
