"""One HTTP/2 client connection carrying many gRPC calls (h2c, prior knowledge).

The transport under ``grpc_lean``: the client end of ``smg.h2.endpoint.H2Endpoint``
(frames, gRPC's 5-byte message framing, receive flow control and protocol checks in the
compiled ``h2wire`` kernel) for the part of HTTP/2 (RFC 9113) a gRPC client needs —
preface and SETTINGS, HEADERS (+CONTINUATION from the peer, decoded with ``hpack``),
DATA, WINDOW_UPDATE flow control both ways, PING (answers, and keepalive), RST_STREAM
both ways and GOAWAY.
A call is a ``Call``: its received messages (raw bytes, parsed by the caller) and, once
over, its gRPC status; a reader waits by putting a future in ``call.waiter``, which the
connection resolves when a message or the status arrives (one wake-up per read, however
many messages it brought), unless the call's synchronous ``listener`` took them right
there (a streaming consumer that writes to its client without a task switch). Frames
written in one event-loop turn go out in one write.

Statuses follow gRPC's own mapping: trailers ``grpc-status``/``grpc-message``; an HTTP
status other than 200 without one; RST_STREAM codes (REFUSED_STREAM -> UNAVAILABLE,
CANCEL -> CANCELLED, others -> INTERNAL); a lost connection or a GOAWAY that excludes
the stream -> UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import collections

from smg._fast.h2wire import MESSAGE_COMPRESSED
from smg.clients.h2call import MAX_MESSAGE, Call
from smg.clients.h2headers import (CANCELLED, INTERNAL, OK, RESOURCE_EXHAUSTED, UNAVAILABLE,
                                   UNKNOWN, HeaderDecoder, http_error, rst_status, trailer_status)
from smg.h2 import frames as f
from smg.h2.endpoint import H2Endpoint

__all__ = ["Call", "H2Connection", "OK", "CANCELLED", "UNKNOWN", "INTERNAL", "UNAVAILABLE"]


class H2Connection(H2Endpoint):
    def __init__(self, *, window: int = 1 << 24, conn_window: int = 1 << 30,
                 max_frame: int = 1 << 20, keepalive_s: float = 30.0,
                 keepalive_timeout_s: float = 10.0) -> None:
        super().__init__(max_frame=max_frame, stream_window=window, conn_window=conn_window,
                         max_message=MAX_MESSAGE, server=False)
        # while calls run, a PING every keepalive_s; no ACK within the timeout: the
        # connection is dead (calls fail UNAVAILABLE), as grpc's keepalive does
        self.keepalive = (keepalive_s, keepalive_timeout_s)
        self._tick = self.loop.call_later(keepalive_s, self._keepalive)
        self._ping_due: asyncio.TimerHandle | None = None
        self._lost_why = ""
        self.closed = False  # no new streams: lost, GOAWAY or closed by us
        self.lost = self.loop.create_future()
        self.calls: dict[int, Call] = self.streams
        self.next_sid = 1
        self.window = window  # our per-stream receive window
        self.conn_window = conn_window
        self.max_frame = max_frame  # what we accept
        self.headers = HeaderDecoder()
        self.slot_waiters: collections.deque[asyncio.Future] = collections.deque()

    # -- connection --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._attach(transport)
        hello = f.PREFACE + f.settings({
            f.SETTINGS_ENABLE_PUSH: 0,
            f.SETTINGS_INITIAL_WINDOW_SIZE: self.window,
            f.SETTINGS_MAX_FRAME_SIZE: self.max_frame,
            f.SETTINGS_MAX_HEADER_LIST_SIZE: 1 << 20,
        })
        if self.conn_window > f.DEFAULT_WINDOW:
            hello += f.window_update(0, self.conn_window - f.DEFAULT_WINDOW)
        transport.write(hello)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.closed = True
        self._tick.cancel()
        if self._ping_due is not None:
            self._ping_due.cancel()
        why = self._lost_why or (f"connection lost: {exc}" if exc else "connection closed by the worker")
        for call in list(self.calls.values()):
            self._finish(call, UNAVAILABLE, why)
        self._release_slots()
        if not self.lost.done():
            self.lost.set_result(None)

    def close(self) -> None:
        """GOAWAY and close; running calls end UNAVAILABLE."""
        self.closed = True
        if self.transport is not None:
            self._write(f.goaway(0, f.NO_ERROR))
            self._flush()
            self.transport.close()

    def _fail(self, code: int, why: str) -> None:
        self.closed = True
        self._lost_why = f"HTTP/2 protocol error from the worker: {why}"
        super()._fail(code, why)

    def _keepalive(self) -> None:
        if self.transport is None:
            return
        interval, timeout = self.keepalive
        if self.calls and self._ping_due is None:
            self._write(f.frame(f.PING, 0, 0, b"smg-ping"))
            self._ping_due = self.loop.call_later(timeout, self._keepalive_expired)
        self._tick = self.loop.call_later(interval, self._keepalive)

    def _keepalive_expired(self) -> None:
        self._ping_due = None
        if self.transport is not None:
            self._lost_why = "keepalive ping not answered: connection considered dead"
            self.closed = True
            self.transport.abort()

    def _on_ping_ack(self) -> None:
        if self._ping_due is not None:
            self._ping_due.cancel()
            self._ping_due = None

    # -- calls -------------------------------------------------------------------------
    def has_slot(self) -> bool:
        return len(self.calls) < self.peer_max_streams

    async def wait_slot(self) -> None:
        fut = self.loop.create_future()
        self.slot_waiters.append(fut)
        await fut

    def _release_slots(self) -> None:
        while self.slot_waiters and (self.closed or self.has_slot()):
            fut = self.slot_waiters.popleft()
            if not fut.done():
                fut.set_result(None)

    def open(self, header_block: bytes, body: bytes) -> Call:
        """Start a call: HEADERS, then ``body`` (one framed request) ending the stream."""
        sid = self.next_sid
        self.next_sid += 2
        if self.next_sid >= 1 << 31:
            self.closed = True  # stream ids exhausted: later calls take a new connection
        call = Call(sid, self.peer_initial_window)
        self.calls[sid] = call
        self.reader.open(sid)
        n = len(body)
        if n <= call.window and n <= self.send_window and n <= self.peer_max_frame:
            call.window -= n
            self.send_window -= n
            self._write(f.frame(f.HEADERS, f.END_HEADERS, sid, header_block)
                        + f.frame(f.DATA, f.END_STREAM, sid, body))
        else:
            self._write(f.frame(f.HEADERS, f.END_HEADERS, sid, header_block))
            call.out, call.out_end = memoryview(body), True  # sliced without copying
            self._resume(call)
        return call

    def discard(self, call: Call) -> None:
        """Nobody reads ``call`` any more: drop what it received and will receive."""
        call.discard = True
        call.messages.clear()
        self.reader.discard(call.sid)

    def reset(self, call: Call, code: int = f.CANCEL) -> None:
        """RST_STREAM a running call (the consumer left); it ends CANCELLED."""
        if call.status is None:
            self._write(f.rst_stream(call.sid, code))
            self._finish(call, CANCELLED, "cancelled by the client")

    def _finish(self, call: Call, status: int, details: str) -> None:
        if call.status is None:
            call.status, call.details = status, details
        call.out = b""
        if self.calls.pop(call.sid, None) is not None:
            self.reader.close(call.sid)
            if self.slot_waiters:
                self._release_slots()
        self._wake(call)
        if self.closed and not self.calls and self.transport is not None and not self.lost.done():
            self.transport.close()  # drained after GOAWAY

    @staticmethod
    def _wake(call: Call) -> None:
        w = call.waiter
        if w is not None:
            call.waiter = None
            if not w.done():
                w.set_result(None)

    def _resume(self, call: Call) -> None:
        """Send held-back request bytes as far as both windows allow."""
        while call.out:
            allowed = min(call.window, self.send_window, self.peer_max_frame)
            if allowed <= 0:
                return
            piece, call.out = call.out[:allowed], call.out[allowed:]
            call.window -= len(piece)
            self.send_window -= len(piece)
            last = not call.out and call.out_end
            self._write(f.frame(f.DATA, f.END_STREAM if last else 0, call.sid, piece))

    # -- inbound (frames, flow control and checks: H2Endpoint and the h2wire kernel) -----
    def _on_messages(self, call: Call, messages: list[bytes], end: int) -> None:
        if messages:
            call.messages.extend(messages)
            w = call.waiter
            if w is not None:
                if w.done():  # its reader was cancelled
                    call.waiter = None
                elif call.listener is None or not call.listener():
                    call.waiter = None
                    w.set_result(None)
        if end and call.status is None:
            self._finish(call, INTERNAL, "stream ended without trailers")

    def _on_stream_error(self, call: Call, reason: int) -> None:
        self._write(f.rst_stream(call.sid, f.CANCEL))
        if reason == MESSAGE_COMPRESSED:
            self._finish(call, INTERNAL, "compressed message (not negotiated)")
        else:
            self._finish(call, RESOURCE_EXHAUSTED, "message larger than 256 MiB")

    def _on_reset(self, call: Call, code: int) -> None:
        self._finish(call, *rst_status(code))

    def _on_goaway(self, last_sid: int, code: int) -> None:
        self.closed = True
        for call in [c for s, c in self.calls.items() if s > last_sid]:
            self._finish(call, UNAVAILABLE, f"worker sent GOAWAY (HTTP/2 error code {code})")
        self._release_slots()
        if not self.calls and self.transport is not None:
            self.transport.close()

    def _on_settings(self, pairs: list[tuple[int, int]]) -> None:
        super()._on_settings(pairs)
        self._release_slots()

    def _on_headers(self, sid: int, flags: int, block: bytes) -> None:
        try:
            headers = self.headers.decode(block)  # always: HPACK state must see every block
        except Exception:  # hpack's errors
            self._fail(f.COMPRESSION_ERROR, "bad header block")
            return
        call = self.calls.get(sid)
        if call is None:
            return
        end = flags & f.END_STREAM
        if not call.headers_seen:
            call.headers_seen = True
            failed = http_error(headers)
            if failed is not None:
                self._write(f.rst_stream(sid, f.CANCEL))
                self._finish(call, *failed)
                return
            if not end:
                return
        elif not end:
            self._write(f.rst_stream(sid, f.PROTOCOL_ERROR))
            self._finish(call, INTERNAL, "second header block without END_STREAM")
            return
        self._finish(call, *trailer_status(headers))
