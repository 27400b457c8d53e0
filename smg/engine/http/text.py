"""Token ids to text for one choice: incremental detokenization and stop strings.

This is what an SGLang/vLLM server does between its scheduler and its HTTP answer:

- **Incremental detokenization** (vLLM's prefix/read offsets): each step decodes only a
  short window, ``ids[prefix:]`` against ``ids[prefix:read]``, and emits the new suffix;
  a window ending in an incomplete UTF-8 sequence (``U+FFFD``) waits for more tokens.
- **Stop strings on the decoded text** (vLLM semantics): the first occurrence of any
  stop string ends the choice with ``finish_reason="stop"`` and ``matched_stop`` = the
  string; the text is cut before it (or after it with ``include_stop_str_in_output``).
  While streaming, the last ``max(len(stop)) - 1`` characters are held back, because
  they could still become a stop string; they are released when the choice finishes.
  The tokens of a choice are counted up to the token that completed the stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["ChoiceText"]

_REPLACEMENT = "\ufffd"


class ChoiceText:
    """Decoded text of one choice, fed with token ids as the engine produces them."""

    __slots__ = (
        "_decode",
        "_hold",
        "_prefix",
        "_read",
        "_sent",
        "include_stop",
        "matched",
        "output_ids",
        "skip_special_tokens",
        "stopped",
        "stops",
        "text",
    )

    def __init__(
        self,
        tokenizer: Any,
        stops: Sequence[str] = (),
        *,
        include_stop: bool = False,
        skip_special_tokens: bool = True,
    ) -> None:
        self._decode = tokenizer.decode
        self.skip_special_tokens = skip_special_tokens
        self.stops = tuple(s for s in stops if s)
        self.include_stop = include_stop
        # characters that could still turn into a stop string are not released early
        self._hold = max(map(len, self.stops)) - 1 if self.stops and not include_stop else 0
        self.output_ids: list[int] = []
        self.text = ""
        self._prefix = 0
        self._read = 0
        self._sent = 0
        self.stopped = False
        self.matched: str | None = None

    @property
    def visible(self) -> str:
        """The text released so far (what a stream has shown)."""
        return self.text[: self._sent]

    def push(self, token_ids: Sequence[int]) -> str:
        """Add tokens; return the text that became visible (may be ``""``).

        After a stop string matched, ``stopped`` is set and further tokens are ignored.
        """
        if self.stopped:
            return ""
        if self.stops:
            for tid in token_ids:
                self._step((tid,))
                if self.stopped:
                    break
        else:
            self._step(token_ids)
        return self._release(self.stopped)

    def flush(self) -> str:
        """The choice is finished: return the held-back rest of the text."""
        if not self.stopped and self._read < len(self.output_ids):
            # an incomplete UTF-8 tail at the end stays as U+FFFD, as servers emit it
            tail = self._decode(self.output_ids[self._prefix :], skip_special_tokens=self.skip_special_tokens)
            head = self._decode(
                self.output_ids[self._prefix : self._read], skip_special_tokens=self.skip_special_tokens
            )
            if len(tail) > len(head):
                self._append(tail[len(head) :])
            self._read = len(self.output_ids)
        return self._release(True)

    def _step(self, token_ids: Sequence[int]) -> None:
        ids = self.output_ids
        ids.extend(token_ids)
        skip = self.skip_special_tokens
        new_text = self._decode(ids[self._prefix :], skip_special_tokens=skip)
        if new_text.endswith(_REPLACEMENT):
            return
        if self._read > self._prefix:
            prefix_text = self._decode(ids[self._prefix : self._read], skip_special_tokens=skip)
        else:
            prefix_text = ""
        if len(new_text) > len(prefix_text):
            self._prefix = self._read
            self._read = len(ids)
            self._append(new_text[len(prefix_text) :])
        elif len(new_text) == len(prefix_text):
            # tokens that decode to nothing (skipped specials): the window moves on
            self._read = len(ids)

    def _append(self, delta: str) -> None:
        start = len(self.text)
        self.text += delta
        if not self.stops:
            return
        best = -1
        for stop in self.stops:
            pos = self.text.find(stop, max(0, start - len(stop) + 1))
            if pos != -1 and (best == -1 or pos < best):
                best, self.matched = pos, stop
        if best != -1:
            end = best + len(self.matched) if self.include_stop else best
            self.text = self.text[:end]
            self.stopped = True

    def _release(self, final: bool) -> str:
        end = len(self.text) if final else len(self.text) - self._hold
        if end <= self._sent:
            return ""
        out = self.text[self._sent : end]
        self._sent = end
        return out
