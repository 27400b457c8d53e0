"""HTTP/1.1 to workers, on the wire: one :class:`asyncio.Protocol` per keep-alive connection.

A request is one write (head and body together) on a pooled connection; the response is
parsed by ``httptools.HttpResponseParser`` straight into an :class:`UpstreamResponse`,
whose ``status`` and ``headers`` are there when :meth:`Http1Pool.send` returns (one future,
resolved when the headers arrive; no task per request). The body is read whole
(:meth:`UpstreamResponse.read`) or chunk by chunk as it arrives (``async for``); a
streaming consumer that lags pauses reading from the worker.

A connection goes back to its pool only when its response was complete and keep-alive.
One that saw an error, a timeout, or was abandoned mid-body is closed, which is how a
worker learns that nobody wants the rest of an answer.

A request is sent again (once, on a fresh connection) only when the worker cannot have
seen it: the pooled connection was found closed before the request went out (its FIN or
reset already pending: checked with a zero-timeout poll on connections idle for
``IDLE_CHECK`` seconds or more, the only ones a worker's keep-alive timeout closes), the
write itself failed at once, or the connection ended in a reset with no response byte (a
worker closing a socket with bytes unread resets it: it closed while idle, our request
unread). A reused connection the worker closed cleanly (FIN) after the request went out
is an error like any other: the worker may have read it and started (a generation is not
idempotent), and the proxy's retry decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import ssl
from collections import deque

import httptools

from smg.clients.deadlines import Deadlines

__all__ = ["Deadlines", "Http1Pool", "UpstreamConnectionError", "UpstreamProtocolError", "UpstreamResponse"]

# A streaming consumer this far behind pauses reading from the worker ...
HIGH_WATER = 256 * 1024
# ... until it has caught up to this.
LOW_WATER = 64 * 1024
# A pooled connection idle this long is polled before reuse (the worker may have closed it).
IDLE_CHECK = 1.0
# A worker's response head (status line and headers) longer than this is an error.
MAX_HEAD = 256 * 1024
# Idle keep-alive connections kept per worker (more are closed, the oldest first).
MAX_IDLE = 256


class UpstreamConnectionError(ConnectionError):
    """The worker could not be reached, dropped the connection, or did not speak HTTP/1.x."""


class UpstreamProtocolError(UpstreamConnectionError):
    """The worker answered with something that is not an HTTP answer (a status outside
    100-599, a head over the limit): the worker's failure, not worth asking it again."""


class UpstreamResponse:
    """One worker answer. ``status``, ``headers`` (raw, as the worker wrote them),
    ``content_length`` and ``content_type`` are set when the request returns it."""

    __slots__ = (
        "status", "headers", "content_length", "content_type",
        "_conn", "_parser", "_loop", "_waiter", "_deadlines", "_chunks", "_buffered",
        "_headers_done", "_complete", "_keep_alive", "_to_eof", "_whole", "_received", "_head_size", "_exc",
        "_bad", "_head_read", "_deadline", "_idle",
    )

    def __init__(self, conn: _Conn) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.content_length: int | None = None
        self.content_type: str | None = None
        self._conn: _Conn | None = conn  # None once the response no longer owns it
        self._parser = httptools.HttpResponseParser(self)
        self._loop = conn.loop
        self._waiter: asyncio.Future | None = None
        self._deadlines: Deadlines | None = None  # where its deadline waits, while it does
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._headers_done = False
        self._complete = False
        self._keep_alive = False
        self._to_eof = False  # no length, not chunked: the body ends when the connection does
        self._whole = False  # read() wants it all: never pause reading
        self._received = False  # any response byte came
        self._head_size = 0  # bytes of the head's complete header lines
        self._head_read = 0  # bytes received while the head was still incomplete
        self._deadline = 0.0  # when the whole exchange must be over
        self._idle = 0.0  # longest silence allowed between body chunks (0: no limit)
        self._exc: BaseException | None = None
        self._bad: str | None = None  # why the head is not an HTTP answer (too big, bad status)

    # -- httptools callbacks --------------------------------------------------------------

    # the parser looks every callback up when it is made: unused ones present as None
    # spare it an AttributeError each (~1 us a response)
    on_url = on_status = on_chunk_header = on_chunk_complete = None

    def on_message_begin(self) -> None:
        if self._complete:  # bytes after the answer: never reuse this connection
            self._keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        size = self._head_size = self._head_size + len(name) + len(value) + 4
        if size > MAX_HEAD:  # counted over the whole head, however the reads split it
            self._bad = f"response head over {MAX_HEAD} bytes"

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:  # informational: the answer comes next
            return
        if not 100 <= status <= 599:
            self._bad = f"status {status} outside 100-599"
        self.status = status
        deadlines = self._deadlines
        if deadlines is not None:  # past the first-byte timeout: the silence limit from now on
            deadlines.pending[self] = self._next_deadline()
        chunked = False
        for name, value in self.headers:
            name = name.lower()
            if name == b"content-length":
                self.content_length = int(value)
            elif name == b"content-type":
                self.content_type = value.decode("latin-1")
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        if chunked:
            self.content_length = None
        self._to_eof = self.content_length is None and not chunked and status not in (204, 304)
        self._headers_done = True
        self._wake()

    def _next_deadline(self) -> float:
        idle = self._idle
        return min(self._deadline, self._loop.time() + idle) if idle else self._deadline

    def on_body(self, body: bytes) -> None:
        if self._idle:
            deadlines = self._deadlines
            if deadlines is not None:
                deadlines.pending[self] = self._next_deadline()
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and not self._whole:
            conn = self._conn
            if conn is not None:
                conn.pause()
        if not self._whole:
            self._wake()

    def on_message_complete(self) -> None:
        if not self._headers_done:  # the end of an informational answer
            self.headers = []
            return
        self._keep_alive = self._parser.should_keep_alive()
        self._complete = True
        self._wake()

    # -- the consumer ---------------------------------------------------------------------

    async def read(self) -> bytes:
        """The whole body (waits for the end of it)."""
        self._whole = True
        conn = self._conn
        if conn is not None:
            conn.resume()
        while not self._complete:
            if self._exc is not None:
                raise self._exc
            await self._wait()
        chunks = self._chunks
        self._chunks = []
        self._buffered = 0
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def __aiter__(self) -> UpstreamResponse:
        return self

    async def __anext__(self) -> bytes:
        """All body bytes that came since the last call (waits for some)."""
        while True:
            chunks = self._chunks
            if chunks:
                self._chunks = []
                self._buffered = 0
                conn = self._conn
                if conn is not None and conn.paused:
                    conn.resume()
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                if data:
                    return data
            if self._complete:
                raise StopAsyncIteration
            if self._exc is not None:
                raise self._exc
            await self._wait()

    async def _wait(self) -> None:
        waiter = self._waiter = self._loop.create_future()
        try:
            await waiter
        except asyncio.CancelledError:
            self.close()
            raise
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        """Give up on this answer: a connection still mid-body is closed (the worker sees
        it go away). A complete answer's connection is already back in its pool."""
        conn = self._conn
        if conn is not None:
            self._detach()
            conn.abort()
        if not self._complete and self._exc is None:
            self._exc = UpstreamConnectionError("response closed")

    async def __aenter__(self) -> UpstreamResponse:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    # -- the connection's side ------------------------------------------------------------

    def _fail(self, exc: BaseException) -> None:
        if self._complete or self._exc is not None:
            return
        self._detach()
        self._exc = exc
        self._wake()

    def _detach(self) -> None:
        self._conn = None
        deadlines = self._deadlines
        if deadlines is not None:
            self._deadlines = None
            deadlines.pending.pop(self, None)

    def _timed_out(self) -> None:
        conn = self._conn
        self._fail(asyncio.TimeoutError())
        if conn is not None:
            conn.response = None
            conn.abort()


class _Conn(asyncio.Protocol):
    """One keep-alive connection to a worker; serves one response at a time."""

    __slots__ = ("pool", "loop", "transport", "response", "reused", "paused", "idle_since", "lost", "reset")

    def __init__(self, pool: Http1Pool, loop: asyncio.AbstractEventLoop) -> None:
        self.pool = pool
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.response: UpstreamResponse | None = None
        self.reused = False
        self.paused = False
        self.idle_since = 0.0
        self.lost = False
        self.reset = False  # ended by a reset: the worker closed it with our bytes unread

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport
        with contextlib.suppress(OSError, AttributeError):  # asyncio and uvloop set it too
            transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pool.live.add(self)

    def start(self, data: bytes, deadline: float, first_byte: float = 0.0, idle: float = 0.0) -> UpstreamResponse:
        resp = self.response = UpstreamResponse(self)
        resp._deadline, resp._idle = deadline, idle
        if first_byte:
            deadline = min(deadline, self.loop.time() + first_byte)
        self.pool.deadlines.add(resp, deadline, self.loop)
        assert self.transport is not None
        self.transport.write(data)
        return resp

    def data_received(self, data: bytes) -> None:
        resp = self.response
        if resp is None:  # nothing asked: a worker talking out of turn is not reused
            self.abort()
            return
        resp._received = True
        try:
            resp._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            resp._keep_alive = False
            if not resp._complete:
                self.response = None
                resp._fail(UpstreamConnectionError(f"invalid HTTP response from {self.pool.origin}: {exc}"))
                self.abort()
                return
        if not resp._headers_done:
            resp._head_read += len(data)
            if resp._head_read > MAX_HEAD:
                resp._bad = f"response head over {MAX_HEAD} bytes"
        if resp._bad is not None:
            # a head too big in all (or unfinished past the limit), or a status no server sends
            resp._keep_alive = False
            self.response = None
            resp._headers_done = resp._complete = False  # the caller never sees this answer
            resp._fail(UpstreamProtocolError(f"invalid HTTP response from {self.pool.origin}: {resp._bad}"))
            self.abort()
        elif resp._complete:
            self._done(resp)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.reset = isinstance(exc, (ConnectionResetError, BrokenPipeError))
        self.pool.live.discard(self)
        if self.idle_since:
            self.pool.forget(self)
        resp = self.response
        if resp is None:
            return
        self.response = None
        if resp._to_eof and resp._headers_done and not resp._complete and resp._exc is None:
            resp._complete = True  # the body ran to the end of the connection
            resp._detach()
            resp._wake()
            return
        reason = f": {exc}" if exc is not None else ""
        resp._fail(UpstreamConnectionError(f"worker {self.pool.origin} closed the connection{reason}"))

    def _done(self, resp: UpstreamResponse) -> None:
        self.response = None
        resp._detach()
        # an answer that came before the whole request was written (an early 413, say)
        # leaves the rest of that body in front of the next request: not reusable
        if resp._keep_alive and not self.lost and not self.transport.get_write_buffer_size():  # type: ignore[union-attr]
            self.resume()
            self.pool.put(self)
        else:
            self.abort()

    def pause(self) -> None:
        if not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def abort(self) -> None:
        """Close now, unsent data and all (the worker sees the connection go away)."""
        self.lost = True
        if self.transport is not None:
            self.transport.abort()


class Http1Pool:
    """The keep-alive connections to one worker origin (``scheme://host:port``)."""

    __slots__ = ("origin", "host", "port", "ssl", "host_header", "keepalive", "deadlines", "idle", "live")

    def __init__(self, origin: str, *, keepalive: float, deadlines: Deadlines,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        scheme, _, netloc = origin.partition("://")
        if scheme not in ("http", "https") or not netloc:
            raise ValueError(f"not an http(s) origin: {origin!r}")
        host, port = _split_netloc(netloc, 443 if scheme == "https" else 80)
        self.origin = origin
        self.host = host
        self.port = port
        self.ssl = (ssl_context or ssl.create_default_context()) if scheme == "https" else None
        self.host_header = netloc
        self.keepalive = keepalive
        self.deadlines = deadlines
        self.idle: deque[_Conn] = deque()
        self.live: set[_Conn] = set()

    async def send(self, head: bytes, body: bytes, deadline: float, connect_timeout: float,
                   first_byte: float = 0.0, idle: float = 0.0) -> UpstreamResponse:
        """Send one request; return its response once the headers are in. Besides the
        ``deadline`` of the whole exchange, the head must come within ``first_byte``
        seconds of the request and no body chunk may be more than ``idle`` seconds after
        the one before (0: no such limit); past any of them it fails with TimeoutError."""
        data = head + body
        conn = self._take()
        while True:
            if conn is None:
                conn = await self._connect(deadline, connect_timeout)
            resp = conn.start(data, deadline, first_byte, idle)
            # a reused connection whose write failed at once: the worker saw nothing of it
            unsent = conn.reused and conn.transport.is_closing()  # type: ignore[union-attr]
            try:
                while not resp._headers_done:
                    if resp._exc is not None:
                        raise resp._exc
                    await resp._wait()
                return resp
            except UpstreamConnectionError:
                if resp._received or not (unsent or (conn.reused and conn.reset)):
                    raise  # the worker may have the request: never sent twice from here
                conn = None  # a stale pooled connection: send again, on a fresh one
            except BaseException:
                resp.close()
                raise

    def _take(self) -> _Conn | None:
        idle = self.idle
        if not idle:
            return None
        now = idle[-1].loop.time()
        while idle:
            conn = idle.pop()
            idle_for = now - conn.idle_since
            conn.idle_since = 0.0
            if conn.lost or conn.transport.is_closing():  # type: ignore[union-attr]
                continue
            if idle_for > self.keepalive or (idle_for >= IDLE_CHECK and _readable(conn.transport)):
                conn.abort()  # expired, or closed (or talking) while idle: not to be used
                continue
            return conn
        return None

    def put(self, conn: _Conn) -> None:
        now = conn.loop.time()
        conn.reused = True
        conn.idle_since = now
        idle = self.idle
        idle.append(conn)
        if len(idle) > MAX_IDLE:  # bounded: the oldest idle connection goes
            idle[0].idle_since = now - self.keepalive - 1.0
        while now - idle[0].idle_since > self.keepalive:
            old = idle.popleft()
            old.idle_since = 0.0
            old.abort()

    def forget(self, conn: _Conn) -> None:
        conn.idle_since = 0.0
        try:
            self.idle.remove(conn)
        except ValueError:
            pass

    async def _connect(self, deadline: float, connect_timeout: float) -> _Conn:
        loop = asyncio.get_running_loop()
        timeout = min(connect_timeout, deadline - loop.time())
        if timeout <= 0:
            raise asyncio.TimeoutError()
        try:
            async with asyncio.timeout(timeout):  # not wait_for: on 3.11 it can swallow a cancel
                _transport, conn = await loop.create_connection(
                    lambda: _Conn(self, loop), self.host, self.port, ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None)
        except asyncio.TimeoutError:
            raise
        except OSError as exc:
            raise UpstreamConnectionError(f"cannot connect to {self.origin}: {exc}") from exc
        return conn

    def close(self) -> None:
        self.idle.clear()
        for conn in list(self.live):
            conn.abort()


def _readable(transport: asyncio.BaseTransport) -> bool:
    """Whether an idle connection's socket has something to read (the worker's FIN, a
    reset, or bytes nobody asked for): a zero-timeout poll, no read."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def _split_netloc(netloc: str, default_port: int) -> tuple[str, int]:
    if netloc.startswith("["):  # [v6]:port
        host, _, rest = netloc[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    host, sep, port = netloc.rpartition(":")
    if not sep:
        return netloc, default_port
    return host, int(port)
