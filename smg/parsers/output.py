"""One choice's output: reasoning split first, then tool calls from the answer text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from smg.parsers.core import Delta, ParseResult, StreamingParser, ToolCall
from smg.parsers.reasoning import ThinkParser
from smg.parsers.tools.base import MarkerToolParser

__all__ = ["ChoiceParser"]


class ChoiceParser:
    """Streams one choice through an optional reasoning parser and tool parser.

    ``feed(text)`` returns the delta to send; ``finish(finish_reason)`` flushes what was
    held back (``"length"``: a tool call cut off at ``max_tokens`` is dropped). With
    ``separate_reasoning=False`` the reasoning text stays in ``content``. Reasoning the
    tool stage finds (gpt-oss harmony ``analysis`` channels) joins the reasoning stage's.
    """

    def __init__(
        self,
        reasoning: ThinkParser | None = None,
        tools: MarkerToolParser | None = None,
        *,
        tool_specs: Sequence[Mapping[str, Any]] | None = None,
        separate_reasoning: bool = True,
    ) -> None:
        self._reasoning = reasoning.stream() if reasoning else None
        self._tools: StreamingParser | None = (
            tools.with_tools(tool_specs).stream() if tools is not None else None
        )
        self._separate = separate_reasoning
        self.reasoning_text: list[str] = []
        self.content_text: list[str] = []
        self.calls: dict[int, list[str]] = {}

    def feed(self, text: str) -> Delta:
        return self._route(self._reasoning.feed(text) if self._reasoning else Delta(text), final=False)

    def finish(self, finish_reason: str | None = None) -> Delta:
        head = self._reasoning.finish(finish_reason) if self._reasoning else Delta()
        return self._route(head, final=True, finish_reason=finish_reason)

    def _route(self, d: Delta, final: bool, finish_reason: str | None = None) -> Delta:
        out = Delta(reasoning=d.reasoning if self._separate else "")
        content = d.content if self._separate else d.reasoning + d.content
        if self._tools is not None:
            inner = self._tools.feed(content)
            if final:
                tail = self._tools.finish(finish_reason)
                inner.content += tail.content
                inner.reasoning += tail.reasoning
                inner.tool_calls += tail.tool_calls
            if self._separate:
                out.reasoning += inner.reasoning
                out.content = inner.content
            else:
                out.content = inner.reasoning + inner.content
            out.tool_calls = inner.tool_calls
        else:
            out.content = content
        self.reasoning_text.append(out.reasoning)
        self.content_text.append(out.content)
        for tc in out.tool_calls:
            entry = self.calls.setdefault(tc.index, [tc.name or "", ""])
            entry[1] += tc.arguments
        return out

    def result(self) -> ParseResult:
        """Everything seen so far, as one message (for non-streaming responses)."""
        calls = [ToolCall(n, a) for n, a in (self.calls[i] for i in sorted(self.calls))]
        return ParseResult("".join(self.content_text), "".join(self.reasoning_text), calls)
