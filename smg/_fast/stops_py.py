"""Stop strings and stop token ids over streamed text (pure Python; the specification).

API (the same in ``stops_c``; import it from :mod:`smg._fast.stops`)::

    s = StopScanner(["</answer>", "\\nUser:"], include_stop=False)
    s.feed(text, act=True) -> (emit_text, matched_stop_or_None)
    s.flush() -> str                                   # end of stream: the held text

    d = StreamDecoder(table, stops=(...), stop_token_ids=(...), include_stop=False,
                      min_tokens=0, skip_special_tokens=True, prompt_tail=())
    d.step(token_id) / d.step_many(token_ids) -> StepResult(text, finished, matched)
    d.flush() -> StepResult                             # EOS / max_tokens
    stream_batch(decoders, token_ids_per_request) -> list[StepResult]

Semantics (identical however the text or the tokens are split into calls):

- Matching is exact on the text (on its UTF-8 bytes in the compiled twin): no Unicode
  normalisation, no case folding ("é" != "e\\u0301"). A stop containing U+FFFD matches a
  replacement character. Empty stop strings raise ValueError; so do more than
  ``MAX_STOPS`` stops or one longer than ``MAX_STOP_BYTES`` UTF-8 bytes.
- The earliest-ending match wins; among matches ending at the same place, the longest.
- Only the longest suffix of the text that is still a proper prefix of some stop is held
  back; everything before it is emitted at once.
- A hidden stop (``include_stop=False``) emits the text up to the match's start; a visible
  one up to its end. Text after the match (the rest of the token, later tokens) is dropped.
- ``feed(text, act=False)`` scans but does not act on a match (before ``min_tokens``): the
  text is still held back and emitted as if no stop had matched.
- After a stop, ``feed`` returns ``("", None)`` and ``step*`` return ``("", True, matched)``.

StreamDecoder (detok fused with the scanner; ``table`` is a ``smg._fast.detok.DetokTable``):

- Tokens are counted from 1; a stop (string or id) acts only on a token whose count is
  greater than ``min_tokens``. Earlier tokens are detokenized and scanned as usual.
- A stop token id ends the stream: held text is released, the detokenizer is flushed (a
  cut-off character becomes U+FFFD) and the token's own text is emitted only when
  ``include_stop`` is set; ``matched`` is the id. A stop string sets ``matched`` to the string.
- A string match is made on a token's text as the detokenizer completes it (after
  skip_special_tokens): a skipped special token between two parts of a stop doesn't break it.
- ``flush()`` (EOS, max_tokens) returns the held text plus the detokenizer's flush; the
  U+FFFD of a cut-off character is not scanned. ``finished`` is then True, ``matched`` None.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Sequence

from smg._fast.detok_py import Detokenizer

__all__ = ["MAX_STOPS", "MAX_STOP_BYTES", "StepResult", "StopScanner", "StreamDecoder", "stream_batch"]

MAX_STOPS = 64
MAX_STOP_BYTES = 1024


class StepResult(NamedTuple):
    text: str
    finished: bool
    matched: str | int | None


def check_stops(stops: Sequence[str]) -> tuple[str, ...]:
    """Validate a list of stop strings (shared by both twins)."""
    if isinstance(stops, str):
        raise TypeError("stops must be a sequence of str, not a str")
    out = tuple(stops)
    if len(out) > MAX_STOPS:
        raise ValueError(f"at most {MAX_STOPS} stop strings")
    for s in out:
        if not isinstance(s, str):
            raise TypeError(f"stop strings must be str, got {type(s).__name__}")
        if not s:
            raise ValueError("empty stop string")
        if len(s.encode("utf-8")) > MAX_STOP_BYTES:
            raise ValueError(f"stop string longer than {MAX_STOP_BYTES} UTF-8 bytes")
    return out


@functools.lru_cache(maxsize=256)
def _compile(stops: tuple[str, ...]) -> tuple[tuple[int, ...], ...]:
    """KMP failure table per stop: fail[q] = longest proper border of stop[:q]."""
    tables = []
    for s in stops:
        fail = [0] * (len(s) + 1)
        k = 0
        for q in range(1, len(s)):
            while k and s[q] != s[k]:
                k = fail[k]
            if s[q] == s[k]:
                k += 1
            fail[q + 1] = k
        tables.append(tuple(fail))
    return tuple(tables)


class StopScanner:
    """Stop-string matcher over streamed text with minimal holdback."""

    def __init__(self, stops: Sequence[str], include_stop: bool = False) -> None:
        self.stops = check_stops(stops)
        self.include_stop = bool(include_stop)
        self._fail = _compile(self.stops)
        self._states = [0] * len(self.stops)
        self._held = ""
        self.matched: str | None = None

    @property
    def finished(self) -> bool:
        return self.matched is not None

    @property
    def held_text(self) -> str:
        """Text held back because it could still become a stop."""
        return self._held

    def feed(self, text: str, act: bool = True) -> tuple[str, str | None]:
        """Scan more text; returns the text now safe to emit and the matched stop (or None)."""
        if self.matched is not None:
            return "", None
        buf = self._held + text
        base = len(self._held)
        stops, fail, states = self.stops, self._fail, self._states
        for i, ch in enumerate(text):
            best = -1
            for j, s in enumerate(stops):
                q = states[j]
                while q and s[q] != ch:
                    q = fail[j][q]
                if s[q] == ch:
                    q += 1
                if q == len(s):
                    if best < 0 or len(s) > len(stops[best]):
                        best = j
                    q = fail[j][q]
                states[j] = q
            if best >= 0 and act:
                stop = stops[best]
                end = base + i + 1
                self.matched = stop
                self._held = ""
                return buf[: end if self.include_stop else end - len(stop)], stop
        depth = max(states, default=0)
        cut = len(buf) - depth
        self._held = buf[cut:]
        return buf[:cut], None

    def flush(self) -> str:
        """End of stream: the held text (it did not become a stop)."""
        out, self._held = self._held, ""
        return out


class StreamDecoder:
    """Per-request detokenizer fused with stop strings, stop token ids and min_tokens."""

    def __init__(
        self,
        table: Any,
        stops: Sequence[str] = (),
        stop_token_ids: Sequence[int] = (),
        include_stop: bool = False,
        min_tokens: int = 0,
        skip_special_tokens: bool = True,
        prompt_tail: Sequence[int] = (),
    ) -> None:
        self._detok = Detokenizer(table, skip_special_tokens=skip_special_tokens, prompt_tail=prompt_tail)
        self._scanner = StopScanner(stops, include_stop) if stops else None
        self._stop_ids = frozenset(int(t) for t in stop_token_ids)
        self.include_stop = bool(include_stop)
        self.min_tokens = int(min_tokens)
        self.num_tokens = 0
        self.finished = False
        self.matched: str | int | None = None

    def step(self, token_id: int) -> StepResult:
        return self.step_many((token_id,))

    def step_many(self, token_ids: Sequence[int]) -> StepResult:
        """Feed this step's tokens; returns the text to emit and whether the stream stopped."""
        if self.finished:
            return StepResult("", True, self.matched)
        out = []
        detok, scanner = self._detok, self._scanner
        for tid in token_ids:
            tid = int(tid)
            self.num_tokens += 1
            armed = self.num_tokens > self.min_tokens
            if armed and tid in self._stop_ids:
                if scanner is not None:
                    out.append(scanner.flush())
                if self.include_stop:
                    out.append(detok.step(tid))
                out.append(detok.flush())
                self.finished, self.matched = True, tid
                break
            text = detok.step(tid)
            if scanner is None:
                out.append(text)
                continue
            emit, stop = scanner.feed(text, act=armed)
            out.append(emit)
            if stop is not None:
                self.finished, self.matched = True, stop
                break
        return StepResult("".join(out), self.finished, self.matched)

    def flush(self) -> StepResult:
        """End of stream (EOS handled by the worker, max_tokens): emit everything held."""
        if self.finished:
            return StepResult("", True, self.matched)
        self.finished = True
        held = self._scanner.flush() if self._scanner is not None else ""
        return StepResult(held + self._detok.flush(), True, None)


def stream_batch(decoders: Sequence[StreamDecoder], token_ids_per_request: Sequence[Sequence[int]]) -> list[StepResult]:
    """One engine step for many requests: ``decoders[i].step_many(token_ids_per_request[i])``."""
    if len(decoders) != len(token_ids_per_request):
        raise ValueError("stream_batch: one list of token ids per decoder")
    return [d.step_many(ids) for d, ids in zip(decoders, token_ids_per_request)]
