"""HTTP/1.1 towards the gateway's clients: the protocol class smg's uvicorn server runs.

uvicorn keeps its server (sockets, lifespan, signals, graceful shutdown: this class keeps
the ``ServerState`` contract of ``connections``, ``tasks`` and ``shutdown()``); only the
per-connection protocol is replaced. uvicorn's httptools protocol pays per request for an
``asyncio.Event``, a regex search per response header name and value, a keep-alive timer
armed and cancelled, and head and body in two writes (two syscalls, two TCP segments).
Here a request gets one ASGI task, started once its headers are in, and a future only
while ``receive()`` has to wait; a response with a Content-Length leaves in one write
(its head waits for the first body message) while a chunked one (SSE) has its head
written at once; header names and values are checked by one regex search each; one timer
per connection closes it after ``timeout_keep_alive`` idle seconds.

Pipelining, ``Expect: 100-continue``, HEAD, HTTP/1.0 and read back-pressure behave as
under uvicorn, and a ``receive()`` waiting after the body returns ``http.disconnect``
when the client goes away or the response is complete. Not supported: WebSocket upgrades
(answered as plain HTTP, then the connection closes) and access logs.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any
from urllib.parse import unquote

import httptools
from starlette.types import ASGIApp
from uvicorn.protocols.http.flow_control import service_unavailable

from smg.http.h1cycle import Cycle as _Cycle
from smg.http.h1limits import BODY_READ_TIMEOUT, head_too_large
from smg.http.h1wire import HIGH_WATER, STATUS_LINE, address

__all__ = ["HIGH_WATER", "MAX_HEAD", "H1Protocol"]

log = logging.getLogger("uvicorn.error")

# A request head (request line and headers) longer than this is answered 431 (llhttp sets
# no limit: an endless header would grow until memory ran out). While the head is coming
# in, the reads after its first are counted (an endless head is cut within one read of the
# limit); once it is complete, a head that came in more than one read, or in a read over
# the limit, is measured whole (smg.http.h1limits). A head in one small read costs nothing.
MAX_HEAD = 65536

class H1Protocol(asyncio.Protocol):
    """One client connection. Built by uvicorn's server as ``http=H1Protocol``."""

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        if not config.loaded:
            config.load()
        self.app: ASGIApp = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.root_path: str = config.root_path
        self.keep_alive_secs: float = config.timeout_keep_alive
        self.limit_concurrency: int | None = config.limit_concurrency
        self.server_state = server_state
        self.app_state = app_state
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.server: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        self.cycle: _Cycle | None = None  # the request whose bytes are being read
        self.active: _Cycle | None = None  # the request being answered
        self.queue: deque[_Cycle] = deque()  # pipelined requests waiting for their turn
        self.read_paused = False
        self.write_paused = False
        self.drains: list[asyncio.Future] = []
        self.idle_since: float | None = None
        self.idle_timer: asyncio.TimerHandle | None = None
        # the request being parsed
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.expect_continue = False
        self.in_head = False  # between a request's first byte and the end of its head
        self.head_begun = False  # ... which began in the read being parsed (not counted)
        self.head_size = 0
        self.measure_head = False  # a read over MAX_HEAD came in: measure the head once complete
        self.head_too_large = False
        self.shutting_down = False
        self.body_timeout: float = getattr(config, "smg_body_read_timeout", BODY_READ_TIMEOUT)

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.server_state.connections.add(self)
        self.transport = transport  # type: ignore[assignment]
        self.server = address(transport.get_extra_info("sockname"))
        self.client = address(transport.get_extra_info("peername"))
        if transport.get_extra_info("sslcontext"):
            self.scheme = "https"
        # a client that sends no request (or half a head) is closed like an idle one
        self.idle_since = self.loop.time()
        self.idle_timer = self.loop.call_later(self.keep_alive_secs, self._idle_check)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)
        for cycle in (self.active, self.cycle):
            if cycle is not None and not cycle.complete:
                cycle.disconnected = True
                cycle.wake()
        self._wake_drains()
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        if exc is None:
            self.transport.close()

    def eof_received(self) -> None:
        pass  # the transport closes itself, as under uvicorn

    def data_received(self, data: bytes) -> None:
        if len(data) > MAX_HEAD:
            self.measure_head = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self.cycle is not None:  # answered as plain HTTP; the rest is not ours to read
                self.cycle.keep_alive = False
        except httptools.HttpParserError:
            if self.head_too_large:  # raised by on_headers_complete
                log.warning("Request head over %d bytes.", MAX_HEAD)
                self._refuse(431, b"Request header fields too large.")
                return
            log.warning("Invalid HTTP request received.")
            self._refuse(400, b"Invalid HTTP request received.")
            return
        if self.in_head:
            if self.head_begun:
                self.head_begun = False
            else:
                self.head_size += len(data)
                if self.head_size > MAX_HEAD:
                    log.warning("Request head over %d bytes.", MAX_HEAD)
                    self._refuse(431, b"Request header fields too large.")

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_drains()

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.expect_continue = False
        self.in_head = self.head_begun = True
        self.head_size = 0
        if self.active is None:
            self.idle_since = self.loop.time()  # the head is due within the keep-alive time

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.in_head = False
        if self.measure_head or not self.head_begun:  # a large read, or a head over several reads
            self.measure_head = False
            if head_too_large(self.url, self.headers, MAX_HEAD):
                self.head_too_large = True
                raise ValueError("request head too large")  # stops the parser: data_received answers 431
        self.idle_since = None
        parser = self.parser
        version = parser.get_http_version()
        url = httptools.parse_url(self.url)
        raw_path = url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = unquote(path)
        root = self.root_path
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": version,
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "method": parser.get_method().decode("ascii"),
            "root_path": root,
            "path": root + path if root else path,
            "raw_path": root.encode("ascii") + raw_path if root else raw_path,
            "query_string": url.query or b"",
            "headers": self.headers,
            "state": self.app_state.copy(),
        }
        keep_alive = version != "1.0" and parser.should_keep_alive()
        self.cycle = cycle = _Cycle(self, scope, keep_alive, self.expect_continue)
        scope["extensions"] = {"smg.write": cycle.write_now}
        if self.active is None:
            self._start(cycle)
        else:  # pipelined: answered after the ones before it
            self.queue.append(cycle)
            self.pause_reading()

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if cycle is None or cycle.complete:
            return
        cycle.chunks.append(body)
        cycle.buffered += len(body)
        if cycle.buffered > HIGH_WATER:
            self.pause_reading()
        cycle.wake()

    def on_message_complete(self) -> None:
        cycle = self.cycle
        if cycle is None or cycle.complete:
            return
        if cycle.body_timer is not None:
            cycle.body_timer.cancel()
        cycle.more_body = False
        cycle.wake()

    # -- the connection's state --------------------------------------------------------------

    def _start(self, cycle: _Cycle) -> None:
        self.active = cycle
        app = self.app
        limit = self.limit_concurrency
        if limit is not None and (len(self.server_state.connections) >= limit or len(self.server_state.tasks) >= limit):
            log.warning("Exceeded concurrency limit.")
            app = service_unavailable
        tasks = self.server_state.tasks
        task = self.loop.create_task(cycle.run(app))
        task.add_done_callback(tasks.discard)
        tasks.add(task)

    def response_done(self, cycle: _Cycle) -> None:
        self.server_state.total_requests += 1
        if self.active is cycle:
            self.active = None
        if self.transport.is_closing():
            return
        self.resume_reading()
        if self.queue:
            self._start(self.queue.popleft())
            return
        self.idle_since = self.loop.time()
        if self.idle_timer is None:
            self.idle_timer = self.loop.call_later(self.keep_alive_secs, self._idle_check)

    def _idle_check(self) -> None:
        self.idle_timer = None
        if self.idle_since is None or self.active is not None or self.transport.is_closing():
            return  # busy: the response that ends it arms the timer again
        left = self.idle_since + self.keep_alive_secs - self.loop.time()
        if left <= 0:
            self.transport.close()
        else:
            self.idle_timer = self.loop.call_later(left, self._idle_check)

    def shutdown(self) -> None:
        """Called by the server on shutdown: close once the response in flight is sent."""
        self.shutting_down = True  # a stream its grace period cuts ends with an error event
        if self.active is None:
            self.transport.close()
        else:
            self.active.keep_alive = False
            self.queue.clear()

    def pause_reading(self) -> None:
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()

    async def drain(self) -> None:
        waiter = self.loop.create_future()
        self.drains.append(waiter)
        await waiter

    def _wake_drains(self) -> None:
        for waiter in self.drains:
            if not waiter.done():
                waiter.set_result(None)
        self.drains.clear()

    def _refuse(self, status: int, message: bytes) -> None:
        """A request that cannot be read: answered ``status`` and closed. Behind an answer
        in progress (pipelined), that answer finishes first, then the connection closes."""
        self.in_head = False
        active = self.active
        if active is not None and (active is not self.cycle or not active.more_body):
            active.keep_alive = False
            self.queue.clear()
            self.pause_reading()
            return
        if active is not None:  # its own body is broken: the app reads a disconnect
            active.disconnected = True
            active.wake()
        if active is None or not active.started:
            self.transport.write(b"%scontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
                                 b"connection: close\r\n\r\n%s" % (STATUS_LINE[status], len(message), message))
        self.transport.close()
