"""Stop strings on the text a choice produces (``smg._fast.stops`` does the scanning).

``StopMatcher.feed(text, act)`` returns the text that is safe to emit and the matched
stop string (or None). Only the longest suffix that could still grow into a stop is held
back; ``flush()`` releases it at the end. With ``act=False`` (before min_tokens) text is
scanned but a match does not stop the choice.
"""

from __future__ import annotations

from collections.abc import Sequence

from smg._fast.stops import StopScanner

__all__ = ["StopMatcher"]


class StopMatcher:
    def __init__(self, stops: Sequence[str], *, visible: bool = False) -> None:
        self._scanner = StopScanner(list(stops), include_stop=visible)

    def feed(self, text: str, act: bool = True) -> tuple[str, str | None]:
        return self._scanner.feed(text, act=act)

    def flush(self) -> str:
        return self._scanner.flush()
