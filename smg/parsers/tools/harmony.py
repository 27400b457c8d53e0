"""gpt-oss "harmony" channels: reasoning, tool calls and the answer in one stream.

A message is ``[<|start|>assistant[ to=functions.f]]<|channel|>CHANNEL[ to=functions.f]
[ <|constrain|>json]<|message|>BODY`` ending at ``<|end|>``, ``<|call|>`` or
``<|return|>``. ``analysis`` bodies are reasoning, a body addressed ``to=functions.NAME``
is a call whose arguments are the body, and ``final`` (or un-addressed ``commentary``)
bodies are content. Text outside any message is content.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from smg.parsers.core import Snapshot, SnapshotBuilder
from smg.parsers.scan import find_first, held_suffix
from smg.parsers.tools.base import MarkerToolParser

__all__ = ["HarmonyParser", "read_header"]

_STARTS = ("<|start|>", "<|channel|>")
_MESSAGE = "<|message|>"
_ENDS = ("<|end|>", "<|call|>", "<|return|>")
_TO = re.compile(r"to=functions\.([^\s<]+)")


def read_header(text: str, i: int) -> tuple[int, str, str | None]:
    """The message header at ``text[i]``: where its ``<|message|>`` is (-1: not yet),
    its channel, and the function it is addressed to (None: not a call)."""
    m = text.find(_MESSAGE, i)
    if m == -1:
        return -1, "", None
    header = text[i:m]
    to = _TO.search(header)
    words = header.split("<|channel|>", 1)[-1].split() if "<|channel|>" in header else []
    return m, words[0] if words else "", to.group(1) if to else None


@dataclass(frozen=True)
class HarmonyParser(MarkerToolParser):
    name: str = "gpt_oss"
    starts = _STARTS

    def parse(self, text: str, final: bool, state: object = None) -> Snapshot:
        b = SnapshotBuilder()
        n = len(text)
        pos = 0
        if state in ("reasoning", "content"):
            pos = self._body(text, 0, str(state), None, b, final)
            if pos is None:
                return b.build()
        while True:
            i, _ = find_first(text, _STARTS, pos)
            if i == -1:
                keep = 0 if final else held_suffix(text, _STARTS + _ENDS, pos)
                b.content(text[pos : n - keep])
                b.safe(n - keep)
                return b.build()
            b.content(text[pos:i])
            b.safe(i)
            m, channel, to = read_header(text, i)
            if m == -1:
                return b.build()  # header still arriving (final: dropped)
            kind = "call" if to else ("reasoning" if channel == "analysis" else "content")
            end = self._body(text, m + len(_MESSAGE), kind, to, b, final)
            if end is None:
                return b.build()
            pos = end
            b.safe(pos)

    def _body(self, text, j, kind, name, b, final):
        n = len(text)
        stop, marker = find_first(text, _ENDS, j)
        done = stop != -1
        if not done:
            stop = n - (0 if final else held_suffix(text, _ENDS, j))
        body = text[j:stop]
        if kind == "call":
            call = b.call(name or "")
            call.arguments = body.lstrip()
            call.done = done or final
        elif kind == "reasoning":
            b.reasoning(body)
        else:
            b.content(body)
        if done:
            return stop + len(marker or "")
        if kind != "call":
            b.safe(stop, kind)
        return n if final else None
