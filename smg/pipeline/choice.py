"""One choice of a response: token ids in, OpenAI delta fields out.

detok fused with stop strings and stop ids (``smg._fast.stops.StreamDecoder``, one call
per engine step) -> reasoning/tool parsing (``smg.parsers``). A local stop pins
``finish_reason="stop"`` and ``matched_stop``; whatever the worker sends after it for
this choice is ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from smg._fast.detok import DetokTable
from smg._fast.stops import StreamDecoder
from smg.parsers.core import Delta
from smg.parsers.output import ChoiceParser

__all__ = ["ChoiceStream"]


class ChoiceStream:
    def __init__(
        self,
        index: int,
        table: DetokTable,
        *,
        stop: Sequence[str] = (),
        stop_token_ids: Iterable[int] = (),
        visible_stops: bool = False,
        min_tokens: int = 0,
        skip_special_tokens: bool = True,
        prompt_tail: Sequence[int] = (),
        parser: ChoiceParser | None = None,
    ) -> None:
        self.index = index
        self._decoder = StreamDecoder(
            table,
            stops=tuple(stop),
            stop_token_ids=tuple(stop_token_ids),
            include_stop=visible_stops,
            min_tokens=min_tokens,
            skip_special_tokens=skip_special_tokens,
            prompt_tail=tuple(prompt_tail),
        )
        self._parser = parser
        self._parser_done = False
        self.plain = parser is None  # no reasoning/tool parser: the text is the content (feed_text)
        self.tokens = 0
        self.stopped = False
        self.finish_reason: str | None = None
        self.matched_stop: int | str | None = None
        self.text_parts: list[str] = []

    @property
    def stopped_by_string(self) -> bool:
        """Stopped on a stop string: only the gateway knows, so the worker must be aborted."""
        return self.stopped and isinstance(self.matched_stop, str)

    def feed(self, token_ids: Sequence[int]) -> Delta:
        """New tokens from the worker; returns what the client should see now."""
        if self.stopped:
            return Delta()
        return self._parse(self.feed_text(token_ids))

    def feed_text(self, token_ids: Sequence[int]) -> str:
        """``feed`` for a ``plain`` choice: the content to send now, without a Delta (and
        for any choice: the text its parser is to see)."""
        if self.stopped:
            return ""
        self.tokens += len(token_ids)
        result = self._decoder.step_many(token_ids)
        if result.finished:
            self.stopped = True
            self.finish_reason = "stop"
            self.matched_stop = result.matched
        text = result.text
        if text:
            self.text_parts.append(text)
        return text

    @property
    def consumed(self) -> int:
        """Tokens the decoder took: all fed, or up to and including a local stop's."""
        return self._decoder.num_tokens

    def finish(self, reason: str, matched: int | str | None) -> Delta:
        """The worker finished this choice (or its stream ended): flush what was held."""
        if self.stopped:
            return self._flush_parser()
        result = self._decoder.flush()
        self.stopped = True
        self.finish_reason = reason
        self.matched_stop = matched
        if result.text:
            self.text_parts.append(result.text)
        delta = self._parse(result.text)
        rest = self._flush_parser()
        delta.content += rest.content
        delta.reasoning += rest.reasoning
        delta.tool_calls += rest.tool_calls
        return delta

    def _parse(self, text: str) -> Delta:
        if self._parser is None:
            return Delta(content=text)
        return self._parser.feed(text) if text else Delta()

    def _flush_parser(self) -> Delta:
        if self._parser is None or self._parser_done:
            return Delta()
        self._parser_done = True
        # the finish reason tells the parsers whether a call left open was cut off (length)
        return self._parser.finish(self.finish_reason)

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    def result(self) -> dict[str, Any]:
        if self._parser is None:
            return {"content": self.text, "reasoning": "", "calls": []}
        r = self._parser.result()
        return {"content": r.content, "reasoning": r.reasoning, "calls": r.calls}
