"""Request deadlines swept by one timer (the HTTP/1.1 client's timeouts).

Each pending entry is an object with ``_timed_out()`` (called once its deadline passed,
and which takes it out of ``pending``) and a ``_deadlines`` slot. A deadline may move
while it waits (``pending[entry] = new``): how the first-byte and between-chunks
timeouts follow a response as it comes in.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["Deadlines"]


class Deadlines:
    """Request deadlines, checked every ``tick`` seconds by one timer while any are
    pending (a timer per request costs more than the rest of its bookkeeping); a request
    times out up to ``tick`` late."""

    __slots__ = ("tick", "pending", "_handle")

    def __init__(self, tick: float = 0.05) -> None:
        self.tick = tick
        self.pending: dict[Any, float] = {}
        self._handle: asyncio.TimerHandle | None = None

    def add(self, resp: Any, deadline: float, loop: asyncio.AbstractEventLoop) -> None:
        resp._deadlines = self
        self.pending[resp] = deadline
        if self._handle is None:
            self._handle = loop.call_later(self.tick, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        pending = self.pending
        for resp in [r for r, deadline in pending.items() if deadline <= now]:
            resp._timed_out()  # which takes it out of pending
        self._handle = loop.call_later(self.tick, self._sweep, loop) if pending else None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.pending.clear()
