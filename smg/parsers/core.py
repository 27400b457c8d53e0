"""Snapshot parsing: one definition of a format gives streaming and complete results.

A format parser implements a single pure function, ``parse(text, final) -> Snapshot``:
what the model output ``text`` means so far — the plain content, the reasoning text and
the tool calls (name, and the arguments JSON text known so far). With ``final=False``
the snapshot must be *stable*: every field is a prefix of the same field for any longer
text (hold back anything that could still turn into a marker). ``StreamingParser``
turns the sequence of snapshots into OpenAI-shaped deltas by diffing, so streaming is
correct by construction: the deltas of any chunking concatenate to ``parse(text, True)``.

A tool call is sent only once it is *complete* (``done`` in a snapshot with
``final=False``: its closing marker, or for formats without one its payload, has
arrived), whole, in one delta. So a call cut off by ``max_tokens`` is never sent: the
final parse gets the finish reason, and with ``"length"`` it keeps only the calls that
were complete (``Parser.final``). Other finish reasons close a call left open at the end
of the output, as before.

To keep the work per chunk proportional to the chunk, a parser also reports a *safe
point*: an offset up to which the text is consumed for good (no call open, nothing
held). The driver keeps what came before it and re-parses only the rest.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

__all__ = [
    "CallSnapshot",
    "all_content",
    "Delta",
    "ParseResult",
    "Parser",
    "Snapshot",
    "SnapshotBuilder",
    "StreamingParser",
    "ToolCall",
    "ToolCallDelta",
]


@dataclass
class CallSnapshot:
    """A tool call as known so far; ``arguments`` is a prefix of the final JSON text."""

    name: str
    arguments: str = ""
    done: bool = False


@dataclass
class Snapshot:
    content: str = ""
    reasoning: str = ""
    calls: list[CallSnapshot] = field(default_factory=list)
    # Everything in text[:safe_offset] is final; it produced content[:safe_content],
    # reasoning[:safe_reasoning] and calls[:safe_calls] (all complete).
    safe_offset: int = 0
    safe_content: int = 0
    safe_reasoning: int = 0
    safe_calls: int = 0
    safe_state: object = None  # the parser state to resume from at safe_offset


class SnapshotBuilder:
    """Collects a snapshot while a parser scans its text left to right."""

    def __init__(self) -> None:
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._content_len = 0
        self._reasoning_len = 0
        self.calls: list[CallSnapshot] = []
        self._safe: tuple[int, int, int, int, object] = (0, 0, 0, 0, None)
        self.tail = False  # free for a parser: whether its content so far ends in text

    def content(self, text: str) -> None:
        if text:
            self._content.append(text)
            self._content_len += len(text)

    def ends_in_text(self, before: bool = False) -> bool:
        """Whether the content so far ends in non-whitespace (``before``: the answer
        for the content before this parse, when this parse added none)."""
        return not self._content[-1][-1].isspace() if self._content else before

    def reasoning(self, text: str) -> None:
        if text:
            self._reasoning.append(text)
            self._reasoning_len += len(text)

    def call(self, name: str, arguments: str = "", done: bool = False) -> CallSnapshot:
        snap = CallSnapshot(name, arguments, done)
        self.calls.append(snap)
        return snap

    def safe(self, offset: int, state: object = None) -> None:
        """Mark ``text[:offset]`` as consumed for good (no open call, nothing held);
        ``parse(rest, final, state)`` must then continue exactly where this left off."""
        if any(not c.done for c in self.calls):
            return
        self._safe = (offset, self._content_len, self._reasoning_len, len(self.calls), state)

    def build(self) -> Snapshot:
        off, c, r, n, state = self._safe
        return Snapshot(
            "".join(self._content), "".join(self._reasoning), self.calls, off, c, r, n, state
        )


def all_content(text: str) -> Snapshot:
    """The snapshot of a format that reads nothing: all of ``text`` is content."""
    return Snapshot(text, "", [], len(text), len(text), 0, 0, None)


class Parser(ABC):
    """A model-output format. Subclasses implement ``parse``; instances are stateless."""

    name: str = ""

    @abstractmethod
    def parse(self, text: str, final: bool, state: object = None) -> Snapshot:
        """Interpret ``text``; with ``final=False`` hold back what may still change.

        ``state`` is None at the start of the output, else a ``safe_state`` this parser
        reported earlier (the text then starts at that safe point)."""

    def fast(self, chunk: str, state: object) -> tuple[str, str] | None:
        """(content, reasoning) for a chunk that arrives at a safe point (nothing held)
        and cannot start or end anything in ``state``; None means "parse it". Optional:
        it only saves work, and must agree with ``parse``."""
        return None

    def final(self, text: str, state: object = None, finish_reason: str | None = None) -> Snapshot:
        """``parse(text, True, state)`` for an output that ended with ``finish_reason``.

        ``"length"`` (cut at ``max_tokens``): a call that was not complete is dropped;
        the calls complete before it stay, and the content is the text before it."""
        snap = self.parse(text, True, state)
        if finish_reason == "length" and snap.calls:
            del snap.calls[complete_calls(self.parse(text, False, state).calls) :]
        return snap

    def parse_complete(self, text: str, finish_reason: str | None = None) -> ParseResult:
        snap = self.final(text, None, finish_reason)
        calls = [ToolCall(c.name, c.arguments) for c in snap.calls]
        return ParseResult(snap.content, snap.reasoning, calls)

    def stream(self) -> StreamingParser:
        return StreamingParser(self)


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str


@dataclass(frozen=True)
class ParseResult:
    content: str
    reasoning: str
    calls: list[ToolCall]


@dataclass(frozen=True)
class ToolCallDelta:
    """One OpenAI ``tool_calls`` delta: id and name on the first one of each call."""

    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass
class Delta:
    content: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCallDelta] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.content or self.reasoning or self.tool_calls)


def complete_calls(calls: list[CallSnapshot]) -> int:
    """How many leading calls of a non-final snapshot are complete."""
    k = 0
    while k < len(calls) and calls[k].done:
        k += 1
    return k


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


class StreamingParser:
    """Feeds chunks to a ``Parser`` and yields deltas; ``finish()`` flushes the rest.

    Only the text after the last safe point is kept and re-parsed; what came before it
    is remembered as lengths (it was all sent already), so a step costs O(chunk + the
    open region), not O(output so far).
    """

    def __init__(self, parser: Parser, call_index_offset: int = 0) -> None:
        self.parser = parser
        self._text = ""
        self._state: object = None
        self._base_content = 0  # chars of content before the safe point (all sent)
        self._base_reasoning = 0
        self._base_calls: list[CallSnapshot] = []
        self._sent_content = 0
        self._sent_reasoning = 0
        self._sent_args: list[int] = []
        self._ids: list[str] = []
        self._index_offset = call_index_offset
        self.finished = False

    @property
    def calls_started(self) -> int:
        return len(self._sent_args)

    def feed(self, chunk: str) -> Delta:
        if self.finished:
            raise RuntimeError("feed() after finish()")
        if not self._text:
            quick = self.parser.fast(chunk, self._state)
            if quick is not None:
                content, reasoning = quick
                self._base_content += len(content)
                self._sent_content += len(content)
                self._base_reasoning += len(reasoning)
                self._sent_reasoning += len(reasoning)
                return Delta(content, reasoning)
        self._text += chunk
        return self._step(final=False)

    def finish(self, finish_reason: str | None = None) -> Delta:
        """Flush what was held; ``finish_reason`` is the output's (``"length"``: cut at
        ``max_tokens``, so a call left open is dropped, see ``Parser.final``)."""
        if self.finished:
            return Delta()
        self.finished = True
        return self._step(final=True, finish_reason=finish_reason)

    def _step(self, final: bool, finish_reason: str | None = None) -> Delta:
        if final:
            snap = self.parser.final(self._text, self._state, finish_reason)
        else:
            snap = self.parser.parse(self._text, False, self._state)
        delta = Delta(
            snap.content[self._sent_content - self._base_content :],
            snap.reasoning[self._sent_reasoning - self._base_reasoning :],
        )
        self._sent_content = self._base_content + len(snap.content)
        self._sent_reasoning = self._base_reasoning + len(snap.reasoning)
        calls = self._base_calls + snap.calls if snap.calls else self._base_calls
        for i in range(len(self._base_calls), len(calls)):
            call = calls[i]
            if not final and not call.done:
                break  # a call is sent once complete (it may yet be cut off)
            if i >= len(self._sent_args):
                self._ids.append(new_call_id())
                self._sent_args.append(len(call.arguments))
                delta.tool_calls.append(
                    ToolCallDelta(i + self._index_offset, self._ids[i], call.name, call.arguments)
                )
            elif len(call.arguments) > self._sent_args[i]:
                delta.tool_calls.append(
                    ToolCallDelta(
                        i + self._index_offset, None, None, call.arguments[self._sent_args[i] :]
                    )
                )
                self._sent_args[i] = len(call.arguments)
        if not final and snap.safe_offset > 0:
            self._base_content += snap.safe_content
            self._base_reasoning += snap.safe_reasoning
            if snap.safe_calls:
                self._base_calls = self._base_calls + snap.calls[: snap.safe_calls]
            self._text = self._text[snap.safe_offset :]
            self._state = snap.safe_state
        return delta
