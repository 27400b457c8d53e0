"""Reasoning parsers for channel-framed formats: Kimi-K3 XTML and Inkling TML.

Kimi-K3: ``<|open|>think<|sep|>REASONING<|close|>think<|sep|>`` then the answer. The
think channel also ends where a sibling ``response`` or ``tools`` channel opens (that
opener stays, for the tool parser). In the answer, the ``response``/``message``
wrapper tokens are removed; the ``tools`` channel is passed on verbatim.

Inkling: typed blocks. ``<|content_thinking|>`` opens reasoning, ``<|content_text|>``
plain text; ``<|end_message|>``/``<|content_model_end_sampling|>`` close a block; a
``<|message_model|>`` header (author/tool name) is dropped up to its content token.
JSON tool blocks (``<|content_invoke_tool_json|>`` … end token) are passed on verbatim
for the tool parser; text-mode tool blocks are dropped whole.

Like ``ThinkParser``, each offers ``started()``: the variant for a prompt whose template
already opened the thinking block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from smg.parsers.core import Parser, Snapshot, SnapshotBuilder
from smg.parsers.scan import find_first, held_suffix
from smg.parsers.tools.channels import (
    INK_CONTENT_TEXT,
    INK_END,
    INK_END_SAMPLING,
    INK_JSON,
    INK_MESSAGE_MODEL,
    INK_TEXT,
    INK_THINKING,
    K3_MESSAGE_CLOSE,
    K3_MESSAGE_OPEN,
    K3_RESPONSE_CLOSE,
    K3_RESPONSE_OPEN,
    K3_THINK_CLOSE,
    K3_THINK_OPEN,
    K3_TOOLS_OPEN,
)

__all__ = ["InklingReasoningParser", "KimiK3ReasoningParser"]

_START, _REASONING, _AFTER_END, _CONTENT = "start", "reasoning", "after_end", "content"
_K3_WRAPPERS = (K3_RESPONSE_OPEN, K3_RESPONSE_CLOSE, K3_MESSAGE_OPEN, K3_MESSAGE_CLOSE)
_K3_THINK_ENDS = (K3_THINK_CLOSE, K3_RESPONSE_OPEN, K3_TOOLS_OPEN)


@dataclass(frozen=True)
class KimiK3ReasoningParser(Parser):
    starts_in_reasoning: bool = False
    name: str = "kimi_k3"
    # What the gateway checks as for ThinkParser (the prompt ending in ``start`` means
    # the template opened the think channel). Their pieces are special tokens.
    start: ClassVar[str] = K3_THINK_OPEN
    end: ClassVar[str] = K3_THINK_CLOSE

    def started(self) -> KimiK3ReasoningParser:
        return KimiK3ReasoningParser(True, self.name)

    def fast(self, chunk: str, state: object) -> tuple[str, str] | None:
        if "<" in chunk:
            return None
        if state == _CONTENT:
            return chunk, ""
        if state == _REASONING:
            return "", chunk
        return None

    def parse(self, text: str, final: bool, state: object = None) -> Snapshot:
        b = SnapshotBuilder()
        mode = state or _START
        pos, n = 0, len(text)
        if mode == _START:
            j = len(text) - len(text.lstrip())
            rest = text[j:]
            if rest.startswith(K3_THINK_OPEN):
                pos, mode = j + len(K3_THINK_OPEN), _REASONING
            elif not final and K3_THINK_OPEN.startswith(rest):
                return b.build()  # may still become the think opener
            else:
                mode = _REASONING if self.starts_in_reasoning else _CONTENT
        if mode == _REASONING:
            i, marker = find_first(text, _K3_THINK_ENDS, pos)
            if i == -1:
                keep = 0 if final else held_suffix(text, _K3_THINK_ENDS, pos)
                b.reasoning(text[pos : n - keep])
                b.safe(n - keep, _REASONING)
                return b.build()
            b.reasoning(text[pos:i])
            if marker == K3_THINK_CLOSE:
                pos, mode = i + len(marker), _AFTER_END
            else:  # a sibling channel opens: it belongs to the answer
                pos, mode = i, _CONTENT
            b.safe(pos, mode)
        if mode == _AFTER_END:
            j = pos
            while j < n and text[j].isspace():
                j += 1
            if j == n:
                b.safe(n, _AFTER_END)
                return b.build()
            pos = j
        while True:
            i, marker = find_first(text, _K3_WRAPPERS, pos)
            if i == -1:
                break
            b.content(text[pos:i])
            pos = i + len(marker or "")
        keep = 0 if final else held_suffix(text, _K3_WRAPPERS, pos)
        b.content(text[pos : n - keep])
        b.safe(n - keep, _CONTENT)
        return b.build()


# Inkling block kinds (also the parser state at safe points).
_NONE, _HEADER, _THINK, _TEXT, _TOOL, _DROP = "none", "header", "think", "text", "tool", "drop"
INKLING_CONTROL_TOKENS = (
    "<|endoftext|>",
    "<|message_user|>",
    INK_MESSAGE_MODEL,
    "<|message_system|>",
    "<|message_tool|>",
    INK_CONTENT_TEXT,
    "<|content_image|>",
    INK_END_SAMPLING,
    INK_THINKING,
    "<|content_audio_input|>",
    "<|content_tool_error|>",
    "<|content_xml|>",
    INK_JSON,
    INK_TEXT,
    INK_END,
    "<|audio_end|>",
)
_INK_ENDS = (INK_END, INK_END_SAMPLING)


@dataclass(frozen=True)
class InklingReasoningParser(Parser):
    starts_in_reasoning: bool = False
    name: str = "inkling"
    start: ClassVar[str] = INK_THINKING
    end: ClassVar[str] = INK_END

    def started(self) -> InklingReasoningParser:
        return InklingReasoningParser(True, self.name)

    def fast(self, chunk: str, state: object) -> tuple[str, str] | None:
        if state is None or "<" in chunk:
            return None
        if state == _THINK:
            return "", chunk
        if state in (_NONE, _TEXT, _TOOL):
            return chunk, ""
        return None

    @staticmethod
    def _emit(b: SnapshotBuilder, kind: str, text: str) -> None:
        if kind == _THINK:
            b.reasoning(text)
        elif kind not in (_HEADER, _DROP):
            b.content(text)

    @staticmethod
    def _control(b: SnapshotBuilder, kind: str, token: str) -> str:
        """The block kind after ``token``; tool-block tokens are passed on as content."""
        if token == INK_MESSAGE_MODEL:
            return _HEADER
        if token == INK_JSON:
            b.content(token)
            return _TOOL
        if token == INK_TEXT:
            return _DROP
        if kind == _TOOL:
            b.content(token)
            return _NONE if token in _INK_ENDS else kind
        if kind == _DROP:
            return _NONE if token in _INK_ENDS else kind
        if token == INK_THINKING:
            return _THINK
        if token == INK_CONTENT_TEXT:
            return _TEXT
        if token in _INK_ENDS:
            return _NONE
        return kind

    def parse(self, text: str, final: bool, state: object = None) -> Snapshot:
        b = SnapshotBuilder()
        kind = str(state) if state is not None else (_THINK if self.starts_in_reasoning else _NONE)
        pos, n = 0, len(text)
        while True:
            i, token = find_first(text, INKLING_CONTROL_TOKENS, pos)
            if i == -1:
                keep = 0 if final else held_suffix(text, INKLING_CONTROL_TOKENS, pos)
                self._emit(b, kind, text[pos : n - keep])
                b.safe(n - keep, kind)
                return b.build()
            self._emit(b, kind, text[pos:i])
            kind = self._control(b, kind, token or "")
            pos = i + len(token or "")
            b.safe(pos, kind)
