"""Token ids to text for one choice: incremental detokenization and stop strings.

This is what an SGLang/vLLM server does between its scheduler and its HTTP answer, done
by the compiled ``smg._fast.stops.StreamDecoder`` (detok over a per-tokenizer byte table
fused with the stop-string scanner; one C call per engine step):

- a character split over tokens is emitted whole by the token that completes it;
- the first occurrence of a stop string ends the choice with ``finish_reason="stop"``
  and ``matched_stop`` = the string; the text is cut before it (after it with
  ``include_stop_str_in_output`` / SGLang's ``no_stop_trim``);
- while streaming, only the text that could still turn into a stop string is held back;
- stop strings act after ``min_tokens`` tokens; the tokens of a choice are counted up to
  the one that completed the stop.

Stop *token ids* (and EOS) are the engine's: it finishes the choice on them.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from smg._fast.detok import PRIME_IDS, DetokTable
from smg._fast.stops import StreamDecoder

__all__ = ["ChoiceText", "detok_table"]


_TABLES: weakref.WeakKeyDictionary[Any, DetokTable] = weakref.WeakKeyDictionary()


def detok_table(tokenizer: Any) -> DetokTable:
    """The byte table of an ``smg.tokenizer.Tokenizer`` (built once per tokenizer: it
    takes a second or two for a 100k+ vocabulary)."""
    table = _TABLES.get(tokenizer)
    if table is None:
        if getattr(tokenizer, "hf", None) is not None:
            table = DetokTable.from_hf(tokenizer.hf)
        else:
            table = DetokTable.from_tiktoken(tokenizer.tiktoken)
        _TABLES[tokenizer] = table
    return table


class ChoiceText:
    """Decoded text of one choice, fed with token ids as the engine produces them."""

    __slots__ = ("_decoder", "_per_token", "matched", "output_ids", "parts", "stopped")

    def __init__(
        self,
        table: DetokTable,
        stops: Sequence[str] = (),
        *,
        include_stop: bool = False,
        skip_special_tokens: bool = True,
        min_tokens: int = 0,
        prompt_tail: Sequence[int] = (),
    ) -> None:
        stops = tuple(s for s in stops if s)
        self._decoder = StreamDecoder(
            table,
            stops=stops,
            stop_token_ids=(),
            include_stop=include_stop,
            min_tokens=min_tokens,
            skip_special_tokens=skip_special_tokens,
            prompt_tail=tuple(prompt_tail[-PRIME_IDS:]),
        )
        # with stop strings, tokens go in one at a time so the count stops at the match
        self._per_token = bool(stops)
        self.output_ids: list[int] = []
        self.parts: list[str] = []
        self.stopped = False
        self.matched: str | None = None

    @property
    def text(self) -> str:
        """The text released so far (all of it once finished)."""
        if len(self.parts) > 1:
            self.parts[:] = ["".join(self.parts)]
        return self.parts[0] if self.parts else ""

    def push(self, token_ids: Sequence[int]) -> str:
        """Add tokens; return the text that became visible (may be ``""``).

        After a stop string matched, ``stopped`` is set and further tokens are ignored.
        """
        if self.stopped:
            return ""
        if not self._per_token:
            self.output_ids.extend(token_ids)
            text = self._decoder.step_many(token_ids).text
        else:
            out = []
            step = self._decoder.step
            for tid in token_ids:
                self.output_ids.append(tid)
                result = step(tid)
                out.append(result.text)
                if result.finished:
                    self.stopped = True
                    self.matched = result.matched
                    break
            text = "".join(out)
        if text:
            self.parts.append(text)
        return text

    def flush(self) -> str:
        """The choice is finished: return the held-back rest of the text."""
        if self.stopped:
            return ""
        text = self._decoder.flush().text
        if text:
            self.parts.append(text)
        return text
