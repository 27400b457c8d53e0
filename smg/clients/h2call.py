"""The state of one gRPC call on an ``h2conn.H2Connection`` stream."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

__all__ = ["Call", "MAX_MESSAGE"]

MAX_MESSAGE = 256 * 1024 * 1024


class Call:
    """One stream: received messages (``bytes``) in order, then ``status``/``details``.

    ``listener``, when set, is called (no arguments) right after a read appended
    messages, inside the connection's ``data_received``: it returns True when it took
    them itself, and then ``waiter`` is left waiting; False wakes ``waiter`` as usual.
    It must not raise."""

    __slots__ = ("sid", "messages", "waiter", "listener", "status", "details", "headers_seen", "window",
                 "out", "out_end", "discard")

    def __init__(self, sid: int, window: int) -> None:
        self.sid = sid
        self.messages: collections.deque[bytes] = collections.deque()
        self.waiter: asyncio.Future | None = None
        self.listener: Callable[[], bool] | None = None
        self.status: int | None = None  # None while the call runs
        self.details = ""
        self.headers_seen = False
        self.window = window  # what the peer lets us send
        self.out: bytes | memoryview = b""  # request bytes flow control held back
        self.out_end = False
        self.discard = False  # nobody reads it any more: drop its messages
