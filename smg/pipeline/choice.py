"""One choice of a response: token ids in, OpenAI delta fields out.

detok (``smg._fast.detok``) -> stop strings and stop ids (``smg._fast.stops``) ->
reasoning/tool parsing (``smg.parsers``). A local stop pins ``finish_reason="stop"`` and
``matched_stop``; whatever the worker sends after it for this choice is ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from smg._fast.detok import DetokTable, Detokenizer
from smg.parsers.core import Delta
from smg.parsers.output import ChoiceParser
from smg.pipeline.stopping import StopMatcher

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
        self._detok = Detokenizer(table, skip_special_tokens=skip_special_tokens, prompt_tail=list(prompt_tail))
        self._stops = StopMatcher(stop, visible=visible_stops) if stop else None
        self._stop_ids = frozenset(stop_token_ids)
        self._visible = visible_stops
        self._min_tokens = min_tokens
        self._parser = parser
        self._parser_done = False
        self.tokens = 0
        self.stopped = False
        self.finish_reason: str | None = None
        self.matched_stop: int | str | None = None
        self.text_parts: list[str] = []

    def feed(self, token_ids: Sequence[int]) -> Delta:
        """New tokens from the worker; returns what the client should see now."""
        if self.stopped:
            return Delta()
        out: list[str] = []
        for k, tid in enumerate(token_ids):
            self.tokens += 1
            past_min = self.tokens > self._min_tokens
            if tid in self._stop_ids and past_min:
                # Text before the stop token is final; the token itself is hidden unless visible.
                text = self._detok.step_many(token_ids[k:k + 1]) if self._visible else ""
                out.append(self._scan(text, final=True))
                self._stop(tid)
                break
            text = self._detok.step(tid)
            if text:
                out.append(self._scan(text, final=False, past_min=past_min))
                if self.stopped:
                    break
        return self._parse("".join(out))

    def finish(self, reason: str, matched: int | str | None) -> Delta:
        """The worker finished this choice (or the stream ended): flush what was held."""
        if self.stopped:
            return self._flush_parser()
        text = self._detok.flush()
        tail = self._scan(text, final=True)
        self.stopped = True
        if self.finish_reason is None:
            self.finish_reason = reason
            self.matched_stop = matched
        delta = self._parse(tail)
        rest = self._flush_parser()
        delta.content += rest.content
        delta.reasoning += rest.reasoning
        delta.tool_calls += rest.tool_calls
        return delta

    # -- internals ------------------------------------------------------------------

    def _scan(self, text: str, final: bool, past_min: bool = True) -> str:
        if self._stops is None:
            return text
        emit, matched = self._stops.feed(text, act=past_min)
        if matched is not None:
            self._stop(matched)
            return emit
        if final:
            emit += self._stops.flush()
        return emit

    def _stop(self, matched: int | str) -> None:
        self.stopped = True
        self.finish_reason = "stop"
        self.matched_stop = matched

    def _parse(self, text: str) -> Delta:
        if text:
            self.text_parts.append(text)
        if self._parser is None:
            return Delta(content=text)
        return self._parser.feed(text) if text else Delta()

    def _flush_parser(self) -> Delta:
        if self._parser is None or self._parser_done:
            return Delta()
        self._parser_done = True
        return self._parser.finish()

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    def result(self) -> dict[str, Any]:
        if self._parser is None:
            return {"content": self.text, "reasoning": "", "calls": []}
        r = self._parser.result()
        return {"content": r.content, "reasoning": r.reasoning, "calls": r.calls}
