"""One HTTP/1.1 request and its response on a :class:`~smg.http.h1server.H1Protocol`
connection: the ``receive`` and ``send`` its ASGI task is given (moved out of h1server)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message

from smg.errors import error_body
from smg.http.h1wire import (CONTINUE, DISCONNECT, HEADERS_500, HIGH_WATER, NAME_RE, NO_BODY_STATUS, STATUS_LINE,
                             VALUE_RE)

if TYPE_CHECKING:
    from smg.http.h1server import H1Protocol

__all__ = ["Cycle"]

log = logging.getLogger("uvicorn.error")


class Cycle:
    """One request and its response: the ``receive`` and ``send`` its ASGI task is given."""

    __slots__ = ("conn", "scope", "keep_alive", "expect_continue", "chunks", "buffered", "more_body",
                 "delivered", "waiters", "disconnected", "started", "complete", "chunked", "remaining",
                 "head", "head_only", "to_eof", "body_timer", "sse")

    def __init__(self, conn: H1Protocol, scope: dict[str, Any], keep_alive: bool, expect_continue: bool) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.more_body = True  # more request body to come from the client
        self.delivered = False  # the last request body message went to the app
        self.waiters: list[asyncio.Future] | None = None
        self.disconnected = False
        self.started = False
        self.complete = False
        self.chunked = False
        self.remaining = 0  # response body bytes still due under Content-Length
        self.head: bytes | None = None  # a sized response's head, written with its body
        self.head_only = scope["method"] == "HEAD"
        self.to_eof = False  # an unsized answer to HTTP/1.0: the body ends with the connection
        self.sse = False  # a chunked text/event-stream response (set only for chunked ones)
        self.body_timer: asyncio.TimerHandle | None = None  # armed the first time the body is waited for

    def wake(self) -> None:
        waiters = self.waiters
        if waiters is not None:
            self.waiters = None
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def run(self, app: ASGIApp) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except BaseException as exc:  # noqa: BLE001 - reported and answered, as uvicorn does
            cut = self.conn.shutting_down and self.chunked and not self.complete
            if cut and isinstance(exc, asyncio.CancelledError):
                self._end_cut_stream()  # the shutdown grace period is over
                return
            if self.disconnected and isinstance(exc, ClientDisconnect):  # gone (or cut off) mid-body
                log.debug("client left before its request body was read")
                return
            log.error("Exception in ASGI application\n", exc_info=exc)
            if not self.started:
                await self._send_500()
            else:
                self.conn.transport.close()
        else:
            if not self.started and not self.disconnected:
                log.error("ASGI callable returned without starting response.")
                await self._send_500()
            elif self.conn.shutting_down and self.chunked and not self.complete:
                self._end_cut_stream()  # the grace's cancellation, taken in by the app
            elif not self.complete and not self.disconnected:
                log.error("ASGI callable returned without completing response.")
                self.conn.transport.close()

    def _end_cut_stream(self) -> None:
        """A stream the server's shutdown grace cut: an event stream ends with an error
        event and ``data: [DONE]`` (its events leave whole, so this starts on a fresh
        line), then the chunked body's end; any stream is then closed."""
        transport = self.conn.transport
        if self.sse and not self.disconnected and not transport.is_closing():
            log.warning("A stream was cut by the shutdown grace period; ending it with an error event.")
            event = b"data: " + error_body(503, "the gateway shut down before the stream ended",
                                           "service_unavailable") + b"\n\ndata: [DONE]\n\n"
            transport.write(b"%x\r\n%b\r\n0\r\n\r\n" % (len(event), event))
        self.complete = True
        transport.close()

    async def _send_500(self) -> None:
        await self.send({"type": "http.response.start", "status": 500, "headers": HEADERS_500})
        await self.send({"type": "http.response.body", "body": b"Internal Server Error"})

    async def receive(self) -> Message:
        conn = self.conn
        if self.expect_continue:
            self.expect_continue = False
            if not conn.transport.is_closing():
                conn.transport.write(CONTINUE)
        if not (self.disconnected or self.complete) and not self.chunks and (self.more_body or self.delivered):
            conn.resume_reading()
            if self.more_body and self.body_timer is None and conn.body_timeout > 0:  # smg.http.h1limits
                self.body_timer = conn.loop.call_later(conn.body_timeout, self._body_overdue)
            waiter = conn.loop.create_future()
            if self.waiters is None:
                self.waiters = [waiter]
            else:
                self.waiters.append(waiter)
            await waiter
        if self.disconnected or self.complete:
            return DISCONNECT
        chunks = self.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.buffered = 0
        self.delivered = not self.more_body
        if conn.read_paused and self.more_body:
            conn.resume_reading()
        return {"type": "http.request", "body": body, "more_body": self.more_body}

    def _body_overdue(self) -> None:
        if self.more_body and not self.complete and not self.disconnected:
            log.warning("Request body not received within %g s.", self.conn.body_timeout)
            self.conn._refuse(408, b"Request body not received in time.")  # noqa: SLF001 - its connection

    async def send(self, message: Message) -> None:
        conn = self.conn
        if conn.write_paused and not self.disconnected:
            await conn.drain()
        if self.disconnected:
            return
        if not self.started:
            if message["type"] != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', but got '{message['type']}'.")
            self._start(message)
        elif not self.complete:
            if message["type"] != "http.response.body":
                raise RuntimeError(f"Expected ASGI message 'http.response.body', but got '{message['type']}'.")
            self._body(message.get("body", b""), message.get("more_body", False))
        else:
            raise RuntimeError(f"Unexpected ASGI message '{message['type']}' sent, after response already completed.")

    def write_now(self, body: bytes) -> bool:
        """``scope["extensions"]["smg.write"]``: write ``body`` as a chunk of a chunked
        response already started, synchronously (the next ``send`` still ends it); False,
        writing nothing, when that cannot be done now (not started or not chunked, ended,
        the client gone or its transport over the high-water mark): then ``send`` it."""
        if not self.chunked or self.head_only or self.complete or self.disconnected or self.conn.write_paused:
            return False
        transport = self.conn.transport
        if transport.is_closing():
            return False
        if body:
            transport.write(b"%x\r\n%b\r\n" % (len(body), body))
        return True

    def _start(self, message: Message) -> None:
        self.started = True
        self.expect_continue = False
        status = message["status"]
        headers = message.get("headers", ())
        defaults = self.conn.server_state.default_headers
        if defaults:
            headers = [*defaults, *headers]
        if NAME_RE.search(b"".join([n for n, _ in headers])):
            raise RuntimeError("Invalid HTTP header name.")
        if VALUE_RE.search(b"".join([v for _, v in headers])):
            raise RuntimeError("Invalid HTTP header value.")
        line = STATUS_LINE.get(status)
        if line is None:  # not 100-599 (a proxied worker's garbage must not get this far)
            raise RuntimeError(f"Invalid HTTP status code {status!r}.")
        parts = [line]
        length: int | None = None
        chunked = has_close = False
        for name, value in headers:
            name = name.lower()
            if name == b"content-length":
                if length is None and not chunked:
                    length = int(value)
            elif name == b"transfer-encoding":
                if value.lower() == b"chunked" and length is None:
                    chunked = True
            elif name == b"connection":
                if b"close" in [token.strip() for token in value.lower().split(b",")]:
                    self.keep_alive = False
                    has_close = True
            parts += (name, b": ", value, b"\r\n")
        if not self.keep_alive and not has_close:
            parts.append(b"connection: close\r\n")
        if length is None and not chunked and not self.head_only and status not in NO_BODY_STATUS:
            if self.scope["http_version"] == "1.0":  # no chunked encoding in HTTP/1.0
                self.to_eof = True
                self.keep_alive = False
            else:
                chunked = True
                parts.append(b"transfer-encoding: chunked\r\n")
        parts.append(b"\r\n")
        head = b"".join(parts)
        self.chunked = chunked
        self.remaining = length or 0
        if chunked:
            self.sse = b"text/event-stream" in head  # how a cut stream is ended (_end_cut_stream)
            self.conn.transport.write(head)  # a stream's head goes out now, not with its first event
        else:
            self.head = head

    def _body(self, body: bytes, more_body: bool) -> None:
        if self.head_only:
            self.remaining = 0
            data = b""
        elif self.chunked:
            data = b"%x\r\n%b\r\n" % (len(body), body) if body else b""
            if not more_body:
                data += b"0\r\n\r\n"
        elif self.to_eof:
            data = body
        else:
            if len(body) > self.remaining:
                raise RuntimeError("Response content longer than Content-Length")
            self.remaining -= len(body)
            data = body
        transport = self.conn.transport
        head = self.head
        if head is not None:
            self.head = None
            if len(data) <= HIGH_WATER:
                data = head + data
            else:
                transport.write(head)
        if data:
            transport.write(data)
        if not more_body:
            if self.remaining:
                raise RuntimeError("Response content shorter than Content-Length")
            self.complete = True
            self.wake()
            if not self.keep_alive:
                transport.close()
            self.conn.response_done(self)
