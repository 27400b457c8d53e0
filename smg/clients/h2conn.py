"""One HTTP/2 client connection carrying many gRPC calls (h2c, prior knowledge).

The transport under ``grpc_lean``: an ``asyncio.Protocol`` that speaks the part of
HTTP/2 (RFC 9113) a gRPC client needs — preface and SETTINGS, HEADERS (+CONTINUATION
from the peer, decoded with ``hpack``), DATA with gRPC's 5-byte message framing,
WINDOW_UPDATE flow control both ways, PING answers, RST_STREAM both ways and GOAWAY.
A call is a ``Call``: its received messages (raw bytes, parsed by the caller) and, once
over, its gRPC status; a reader waits by putting a future in ``call.waiter``, which the
connection resolves when a message or the status arrives (one wake-up per read, however
many messages it brought). Frames written in one event-loop turn go out in one write.

Statuses follow gRPC's own mapping: trailers ``grpc-status``/``grpc-message``; an HTTP
status other than 200 without one; RST_STREAM codes (REFUSED_STREAM -> UNAVAILABLE,
CANCEL -> CANCELLED, others -> INTERNAL); a lost connection or a GOAWAY that excludes
the stream -> UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import collections
import socket

from smg.clients.h2call import MAX_MESSAGE, Call
from smg.clients.h2headers import (CANCELLED, INTERNAL, OK, RESOURCE_EXHAUSTED, UNAVAILABLE,
                                   UNKNOWN, HeaderDecoder, http_error, rst_status, trailer_status)
from smg.h2 import frames as f

__all__ = ["Call", "H2Connection", "OK", "CANCELLED", "UNKNOWN", "INTERNAL", "UNAVAILABLE"]

class H2Connection(asyncio.Protocol):
    def __init__(self, *, window: int = 1 << 24, conn_window: int = 1 << 30,
                 max_frame: int = 1 << 20, keepalive_s: float = 30.0,
                 keepalive_timeout_s: float = 10.0) -> None:
        self.loop = asyncio.get_running_loop()
        # while calls run, a PING every keepalive_s; no ACK within the timeout: the
        # connection is dead (calls fail UNAVAILABLE), as grpc's keepalive does
        self.keepalive = (keepalive_s, keepalive_timeout_s)
        self._tick = self.loop.call_later(keepalive_s, self._keepalive)
        self._ping_due: asyncio.TimerHandle | None = None
        self._lost_why = ""
        self.transport: asyncio.Transport | None = None
        self.closed = False  # no new streams: lost, GOAWAY or closed by us
        self.lost = self.loop.create_future()
        self.calls: dict[int, Call] = {}
        self.next_sid = 1
        self.window = window  # our per-stream receive window
        self.conn_window = conn_window
        self.max_frame = max_frame  # what we accept
        self.peer_max_frame = f.DEFAULT_MAX_FRAME
        self.peer_initial_window = f.DEFAULT_WINDOW
        self.peer_max_streams = 1 << 31
        self.send_window = f.DEFAULT_WINDOW
        self.recv_unacked = 0
        self.headers = HeaderDecoder()
        self.fragment: tuple[int, int, bytearray] | None = None
        self.rbuf = bytearray()
        self.out: list[bytes] = []
        self.flush_scheduled = False
        self.slot_waiters: collections.deque[asyncio.Future] = collections.deque()

    # -- connection --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
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
        if self.transport is not None:
            self._write(f.goaway(0, code, why.encode()))
            self._flush()
            self.transport.abort()  # connection_lost fails the calls
            self.transport = None

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

    def _write(self, data: bytes) -> None:
        self.out.append(data)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_scheduled = False
        if self.out:
            if self.transport is not None:
                self.transport.write(b"".join(self.out) if len(self.out) > 1 else self.out[0])
            self.out.clear()

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
        n = len(body)
        if n <= call.window and n <= self.send_window and n <= self.peer_max_frame:
            call.window -= n
            self.send_window -= n
            self._write(f.frame(f.HEADERS, f.END_HEADERS, sid, header_block)
                        + f.frame(f.DATA, f.END_STREAM, sid, body))
        else:
            self._write(f.frame(f.HEADERS, f.END_HEADERS, sid, header_block))
            call.out, call.out_end = memoryview(body), True  # sliced without copying
            self._pump(call)
        return call

    def discard(self, call: Call) -> None:
        """Nobody reads ``call`` any more: drop what it received and will receive."""
        call.discard = True
        call.messages.clear()
        call.buf = bytearray()

    def reset(self, call: Call, code: int = f.CANCEL) -> None:
        """RST_STREAM a running call (the consumer left); it ends CANCELLED."""
        if call.status is None:
            self._write(f.rst_stream(call.sid, code))
            self._finish(call, CANCELLED, "cancelled by the client")

    def _finish(self, call: Call, status: int, details: str) -> None:
        if call.status is None:
            call.status, call.details = status, details
        call.out = b""
        if self.calls.pop(call.sid, None) is not None and self.slot_waiters:
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

    def _pump(self, call: Call) -> None:
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

    # -- inbound -----------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        buf = self.rbuf
        if buf:
            buf += data
            if len(buf) >= 9:
                length = (buf[0] << 16) | (buf[1] << 8) | buf[2]
                if len(buf) < 9 + length <= 9 + self.max_frame:
                    return  # still inside one large frame: no copy until it is complete
            view = bytes(buf)
        else:
            view = data
        pos, end = 0, len(view)
        limit = self.max_frame
        calls = self.calls
        half_window = self.window >> 1
        while end - pos >= 9:
            length = (view[pos] << 16) | (view[pos + 1] << 8) | view[pos + 2]
            if length > limit:
                self._fail(f.FRAME_SIZE_ERROR, "frame larger than SETTINGS_MAX_FRAME_SIZE")
                return
            if end - pos - 9 < length:
                break
            ftype, flags = view[pos + 3], view[pos + 4]
            sid = int.from_bytes(view[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
            start = pos + 9
            pos = start + length
            if ftype == 0 and flags == 0 and self.fragment is None:
                # the streaming hot path: a DATA frame holding exactly one whole message
                call = calls.get(sid)
                if (call is not None and not call.buf and not call.discard and length >= 5
                        and view[start] == 0
                        and int.from_bytes(view[start + 1 : start + 5], "big") == length - 5):
                    call.messages.append(view[start + 5 : pos])
                    self.recv_unacked += length
                    call.recv += length
                    if call.recv >= half_window or self.recv_unacked >= self.conn_window >> 1:
                        self._credit(call)
                    w = call.waiter
                    if w is not None:
                        call.waiter = None
                        if not w.done():
                            w.set_result(None)
                    continue
                self._on_data(flags, sid, view[start:pos])
            elif ftype == 0 and self.fragment is None:
                self._on_data(flags, sid, view[start:pos])
            else:
                self._frame(ftype, flags, sid, view[start:pos])
            if self.transport is None:
                return
        if pos == end:
            buf.clear()
        elif buf:
            del buf[:pos]
        else:
            buf += view[pos:]

    def _frame(self, ftype: int, flags: int, sid: int, payload: bytes) -> None:
        if self.fragment is not None and ftype != f.CONTINUATION:
            self._fail(f.PROTOCOL_ERROR, "expected CONTINUATION")
        elif ftype == f.HEADERS:
            if flags & f.PADDED:
                payload = payload[1 : len(payload) - payload[0]]
            if flags & f.PRIORITY_FLAG:
                payload = payload[5:]
            if flags & f.END_HEADERS:
                self._on_headers(sid, flags, payload)
            else:
                self.fragment = (sid, flags, bytearray(payload))
        elif ftype == f.CONTINUATION:
            if self.fragment is None or self.fragment[0] != sid:
                self._fail(f.PROTOCOL_ERROR, "unexpected CONTINUATION")
                return
            self.fragment[2].extend(payload)
            if flags & f.END_HEADERS:
                fsid, fflags, block = self.fragment
                self.fragment = None
                self._on_headers(fsid, fflags, bytes(block))
        elif ftype == f.WINDOW_UPDATE:
            inc = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            if sid == 0:
                self.send_window += inc
                for call in list(self.calls.values()):
                    if call.out:
                        self._pump(call)
            else:
                call = self.calls.get(sid)
                if call is not None:
                    call.window += inc
                    self._pump(call)
        elif ftype == f.SETTINGS:
            if not flags & f.ACK:
                self._on_settings(payload)
        elif ftype == f.PING:
            if not flags & f.ACK:
                self._write(f.frame(f.PING, f.ACK, 0, payload))
            elif self._ping_due is not None:
                self._ping_due.cancel()
                self._ping_due = None
        elif ftype == f.RST_STREAM:
            call = self.calls.get(sid)
            if call is not None:
                self._finish(call, *rst_status(int.from_bytes(payload[:4], "big")))
        elif ftype == f.GOAWAY:
            last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            code = int.from_bytes(payload[4:8], "big")
            self.closed = True
            for call in [c for s, c in self.calls.items() if s > last]:
                self._finish(call, UNAVAILABLE, f"worker sent GOAWAY (HTTP/2 error code {code})")
            self._release_slots()
            if not self.calls and self.transport is not None:
                self.transport.close()
        # PRIORITY, PUSH_PROMISE (disabled) and unknown types are ignored

    def _on_settings(self, payload: bytes) -> None:
        for i in range(0, len(payload) - 5, 6):
            key = int.from_bytes(payload[i : i + 2], "big")
            value = int.from_bytes(payload[i + 2 : i + 6], "big")
            if key == f.SETTINGS_INITIAL_WINDOW_SIZE:
                delta = value - self.peer_initial_window
                self.peer_initial_window = value
                for call in self.calls.values():
                    call.window += delta
            elif key == f.SETTINGS_MAX_FRAME_SIZE:
                self.peer_max_frame = value
            elif key == f.SETTINGS_MAX_CONCURRENT_STREAMS:
                self.peer_max_streams = value
            elif key == f.SETTINGS_HEADER_TABLE_SIZE:
                pass  # we never index what we send, so the peer's table size does not matter
        self._write(f.frame(f.SETTINGS, f.ACK, 0))
        for call in list(self.calls.values()):
            if call.out:
                self._pump(call)
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

    def _credit(self, call: Call | None) -> None:
        """WINDOW_UPDATEs for what was received, once half a window is used up."""
        if self.recv_unacked >= self.conn_window >> 1:
            self._write(f.window_update(0, self.recv_unacked))
            self.recv_unacked = 0
        if call is not None and call.recv >= self.window >> 1:
            self._write(f.window_update(call.sid, call.recv))
            call.recv = 0

    def _on_data(self, flags: int, sid: int, payload: bytes) -> None:
        size = len(payload)
        self.recv_unacked += size
        call = self.calls.get(sid)
        if call is not None and not flags & f.END_STREAM:
            call.recv += size
        self._credit(call)
        if call is None:
            return
        if flags & f.PADDED and payload:
            payload = payload[1 : len(payload) - payload[0]]
        if payload and not call.discard:
            self._messages(call, payload)
        if flags & f.END_STREAM and call.status is None:
            self._finish(call, INTERNAL, "stream ended without trailers")

    def _messages(self, call: Call, payload: bytes) -> None:
        if call.buf:
            call.buf += payload
            if len(call.buf) < call.need:
                return
            payload = bytes(call.buf)
            call.buf = bytearray()
        pos, end = 0, len(payload)
        got = False
        while end - pos >= 5:
            length = int.from_bytes(payload[pos + 1 : pos + 5], "big")
            if end - pos - 5 < length:
                break
            if payload[pos]:
                self._write(f.rst_stream(call.sid, f.CANCEL))
                self._finish(call, INTERNAL, "compressed message (not negotiated)")
                return
            call.messages.append(payload[pos + 5 : pos + 5 + length])
            pos += 5 + length
            got = True
        if pos < end:
            call.buf = bytearray(payload[pos:])
            call.need = 5 if end - pos < 5 else 5 + int.from_bytes(payload[pos + 1 : pos + 5], "big")
            if call.need > MAX_MESSAGE + 5:
                self._write(f.rst_stream(call.sid, f.CANCEL))
                self._finish(call, RESOURCE_EXHAUSTED, "message larger than 256 MiB")
                return
        if got:
            self._wake(call)
