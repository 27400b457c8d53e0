"""The HTTP/2 connection core the lean gRPC client and server share.

``H2Endpoint`` is an ``asyncio.Protocol`` whose ``data_received`` hands the bytes to the
``h2wire`` kernel (frames, gRPC message de-framing, receive flow control, protocol
checks: one compiled call per read) and dispatches the events it returns. What both
ends do the same way lives here: batching writes (frames written in one event-loop turn
go out in one ``transport.write``), the peer's SETTINGS (window, frame size, stream
limit), send-side WINDOW_UPDATEs, PING answers and connection errors (GOAWAY, then the
connection is dropped). What differs is left to the subclass:

- ``_on_messages(stream, messages, end)``: complete messages of an open stream; ``end``
  when the peer's DATA ended the stream;
- ``_on_headers(sid, flags, block)``: a header block (HPACK decoding is the subclass's);
- ``_on_reset(stream, code)``, ``_on_stream_error(stream, reason)`` (an
  ``h2wire.MESSAGE_*`` reason), ``_on_goaway(last_sid, code)``, ``_on_ping_ack()``;
- ``_resume(stream)``: send what flow control held back, as far as the windows allow.

Streams live in ``self.streams`` (stream id -> the subclass's object, which has a
``window`` attribute: what the peer lets us send on it). The kernel de-frames the
messages of open streams: a client opens its own with ``self.reader.open(sid)``; on a
server the peer's HEADERS open them; either end closes them with ``self.reader.close``.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from smg._fast.h2wire import (GOAWAY, HEADERS, MESSAGES, PING, RST_STREAM, SETTINGS,
                              STREAM_ERROR, WINDOW_UPDATE, FrameReader)
from smg.h2 import frames as f

__all__ = ["H2Endpoint"]


class H2Endpoint(asyncio.Protocol):
    def __init__(self, *, max_frame: int, stream_window: int, conn_window: int,
                 max_message: int, server: bool) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.reader = FrameReader(max_frame=max_frame, stream_window=stream_window,
                                  conn_window=conn_window, max_message=max_message,
                                  server=server)
        self.streams: dict[int, Any] = {}
        self.out: list[bytes] = []
        self.flush_scheduled = False
        self.send_window = f.DEFAULT_WINDOW
        self.peer_initial_window = f.DEFAULT_WINDOW
        self.peer_max_frame = f.DEFAULT_MAX_FRAME
        self.peer_max_streams = 1 << 31
        self.last_sid = 0  # the last stream the peer opened that we processed (for GOAWAY)

    def _attach(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

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

    def _fail(self, code: int, why: str) -> None:
        """A connection error: GOAWAY, drop the connection, read nothing more
        (``connection_lost`` ends what still runs)."""
        if self.transport is not None:
            self._write(f.goaway(self.last_sid, code, why.encode()))
            self._flush()
            self.transport.abort()
            self.transport = None

    # -- inbound -----------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        events, out = self.reader.feed(data)
        if out:
            self._write(out)
        streams = self.streams
        for kind, flags, sid, value in events:
            if kind == MESSAGES:
                st = streams.get(sid)
                if st is not None:
                    self._on_messages(st, value, flags)
            elif kind == HEADERS:
                self._on_headers(sid, flags, value)
            elif kind == WINDOW_UPDATE:
                self._on_window_update(sid, value)
            elif kind == SETTINGS:
                self._on_settings(value)
            elif kind == PING:
                if flags & f.ACK:
                    self._on_ping_ack()
                else:
                    self._write(f.frame(f.PING, f.ACK, 0, value))
            elif kind == RST_STREAM or kind == STREAM_ERROR:
                st = streams.get(sid)
                if st is not None:
                    (self._on_reset if kind == RST_STREAM else self._on_stream_error)(st, value)
            elif kind == GOAWAY:
                self._on_goaway(sid, value)
            else:  # CONNECTION_ERROR, always last
                self._fail(flags, value)
            if self.transport is None:
                return

    def _on_window_update(self, sid: int, increment: int) -> None:
        if sid == 0:
            self.send_window += increment
            for st in list(self.streams.values()):
                self._resume(st)
        else:
            st = self.streams.get(sid)
            if st is not None:
                st.window += increment
                self._resume(st)

    def _on_settings(self, pairs: list[tuple[int, int]]) -> None:
        for key, value in pairs:
            if key == f.SETTINGS_INITIAL_WINDOW_SIZE:
                delta = value - self.peer_initial_window
                self.peer_initial_window = value
                for st in self.streams.values():
                    st.window += delta
            elif key == f.SETTINGS_MAX_FRAME_SIZE:
                self.peer_max_frame = value
            elif key == f.SETTINGS_MAX_CONCURRENT_STREAMS:
                self.peer_max_streams = value
            # HEADER_TABLE_SIZE: we never index what we send, so it does not matter
        self._write(f.frame(f.SETTINGS, f.ACK, 0))
        for st in list(self.streams.values()):
            self._resume(st)

    # -- the subclass's part -------------------------------------------------------------
    def _on_messages(self, stream: Any, messages: list[bytes], end: int) -> None:
        raise NotImplementedError

    def _on_headers(self, sid: int, flags: int, block: bytes) -> None:
        raise NotImplementedError

    def _on_reset(self, stream: Any, code: int) -> None:
        raise NotImplementedError

    def _on_stream_error(self, stream: Any, reason: int) -> None:
        raise NotImplementedError

    def _on_goaway(self, last_sid: int, code: int) -> None:
        """The peer opens no more streams; by default running ones finish."""

    def _on_ping_ack(self) -> None:
        """An answer to a PING of ours."""

    def _resume(self, stream: Any) -> None:
        raise NotImplementedError
