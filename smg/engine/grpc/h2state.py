"""Per-call state of the lean gRPC server: the stream, the method, the servicer context."""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import grpc

__all__ = ["Abort", "Context", "Method", "Reset", "Stream"]


class Abort(Exception):
    def __init__(self, code: int, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details


class Reset(Exception):
    """Reset the stream (RST_STREAM) instead of finishing it with a status."""


class Method:
    __slots__ = ("handler", "request_class", "streaming")

    def __init__(self, handler: Any, request_class: Any, streaming: bool) -> None:
        self.handler, self.request_class, self.streaming = handler, request_class, streaming


class Stream:
    __slots__ = ("sid", "path", "metadata", "body", "window", "pending", "task",
                 "headers_sent", "done", "drained")

    def __init__(self, sid: int, window: int) -> None:
        self.sid = sid
        self.path = ""
        self.metadata: tuple[tuple[str, str], ...] = ()
        self.body: bytes | None = None  # the request message, once it is complete
        self.window = window
        self.pending: collections.deque = collections.deque()  # bytes, or ("trailers", block)
        self.task: asyncio.Task | None = None
        self.headers_sent = False
        self.done = False
        self.drained: asyncio.Event | None = None


class Context:
    """The slice of ``grpc.aio.ServicerContext`` the servicers use."""

    __slots__ = ("_conn", "_stream", "code", "details")

    def __init__(self, conn: Any, stream: Stream) -> None:
        self._conn, self._stream = conn, stream
        self.code: grpc.StatusCode | None = None
        self.details = ""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._stream.metadata

    async def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        raise Abort(code.value[0], details)

    async def reset_stream(self) -> None:
        """Drop this call as a broken connection would: RST_STREAM, no trailers."""
        raise Reset()

    async def send_initial_metadata(self, metadata: Any = ()) -> None:
        self._conn._send_headers(self._stream)

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code = code

    def set_details(self, details: str) -> None:
        self.details = details

    def cancelled(self) -> bool:
        return self._stream.done
