"""The ``harmony`` reasoning parser: gpt-oss channels split into reasoning and answer.

A harmony message is ``[<|start|>assistant]<|channel|>CHANNEL[ to=functions.f]
[ <|constrain|>json]<|message|>BODY`` ending at ``<|end|>``, ``<|call|>`` or
``<|return|>``. ``analysis`` bodies are reasoning; ``final`` bodies and un-addressed
``commentary`` bodies (preambles) are content, their framing removed. A message
addressed ``to=`` a function is a tool call: it is passed on verbatim, framing and all,
for the ``gpt_oss`` tool parser. Text outside any message is content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from smg.parsers.core import Parser, Snapshot, SnapshotBuilder, all_content
from smg.parsers.scan import find_first, held_suffix
from smg.parsers.tools.harmony import read_header

__all__ = ["HarmonyReasoningParser", "PassthroughReasoningParser"]

_STARTS = ("<|start|>", "<|channel|>")
_MESSAGE = "<|message|>"
_ENDS = ("<|end|>", "<|call|>", "<|return|>")
_REASON, _CONTENT, _PASS = "reasoning", "content", "pass"


@dataclass(frozen=True)
class HarmonyReasoningParser(Parser):
    starts_in_reasoning: bool = False
    name: str = "harmony"
    # the markers the gateway checks for special tokens (they are, in o200k_harmony)
    start: ClassVar[str] = "<|channel|>"
    end: ClassVar[str] = "<|end|>"

    def started(self) -> HarmonyReasoningParser:
        return self  # a harmony prompt never opens a channel for the model

    def fast(self, chunk: str, state: object) -> tuple[str, str] | None:
        if "<" in chunk or state not in (None, _REASON, _CONTENT):
            return None
        return ("", chunk) if state == _REASON else (chunk, "")

    def parse(self, text: str, final: bool, state: object = None) -> Snapshot:
        b = SnapshotBuilder()
        n = len(text)
        pos = 0
        if state in (_REASON, _CONTENT, _PASS):
            pos = self._body(text, 0, str(state), b, final)
            if pos is None:
                return b.build()
            b.safe(pos)
        while True:
            i, _ = find_first(text, _STARTS, pos)
            if i == -1:
                keep = 0 if final else held_suffix(text, _STARTS, pos)
                b.content(text[pos : n - keep])
                b.safe(n - keep)
                return b.build()
            b.content(text[pos:i])
            b.safe(i)
            m, channel, to = read_header(text, i)
            if m == -1:
                return b.build()  # a header still arriving (or cut off: no answer in it)
            if to is not None:
                kind = _PASS
                b.content(text[i : m + len(_MESSAGE)])
            else:
                kind = _REASON if channel == "analysis" else _CONTENT
            pos = self._body(text, m + len(_MESSAGE), kind, b, final)
            if pos is None:
                return b.build()
            b.safe(pos)

    @staticmethod
    def _body(text: str, j: int, kind: str, b: SnapshotBuilder, final: bool) -> int | None:
        n = len(text)
        stop, marker = find_first(text, _ENDS, j)
        if stop == -1:
            stop = n - (0 if final else held_suffix(text, _ENDS, j))
        body = text[j:stop]
        if kind == _REASON:
            b.reasoning(body)
        else:
            b.content(body)
        if marker is not None:
            if kind == _PASS:
                b.content(marker)
            return stop + len(marker)
        b.safe(stop, kind)
        return n if final else None


@dataclass(frozen=True)
class PassthroughReasoningParser(Parser):
    """No reasoning separation: the whole output is content (Rust ``passthrough``)."""

    name: str = "passthrough"
    start: ClassVar[str] = ""
    end: ClassVar[str] = ""

    def started(self) -> PassthroughReasoningParser:
        return self

    def fast(self, chunk: str, state: object) -> tuple[str, str] | None:
        return chunk, ""

    def parse(self, text: str, final: bool, state: object = None) -> Snapshot:
        return all_content(text)
