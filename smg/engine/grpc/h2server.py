"""A lean gRPC server: HTTP/2 over asyncio, serving grpc.aio-style servicers.

grpc.aio spends hundreds of µs of CPU per call and tens per streamed message; a worker
that must never be what limits a gateway benchmark needs less. This server implements
the part of HTTP/2 (RFC 9113) that gRPC over cleartext uses: the connection preface,
SETTINGS, PING, WINDOW_UPDATE flow control both ways, HEADERS/CONTINUATION (decoded
by ``hpackdec``), DATA, RST_STREAM (a cancelled call cancels its handler) and GOAWAY.
Responses are one HEADERS frame, DATA frames with length-prefixed messages and a
trailers HEADERS frame (``grpc-status``, ``grpc-message``); an error before any message
is a trailers-only response. Writes issued in one event-loop iteration go out in one
``transport.write``. Compression is not supported (requests with the compressed flag
get UNIMPLEMENTED); nobody here sends it.

The same servicer classes run on this server and on grpc.aio: handlers get a context
with ``invocation_metadata()``, ``abort(code, details)`` and ``send_initial_metadata()``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import Any

import grpc
from google.protobuf import message_factory

from smg.h2 import frames as f
from smg.engine.grpc.hpackdec import HpackDecoder, HpackError
from smg.engine.grpc.h2state import Abort as _Abort
from smg.engine.grpc.h2state import Context as _Context
from smg.engine.grpc.h2state import Method as _Method
from smg.engine.grpc.h2state import Reset as _Reset
from smg.engine.grpc.h2state import Stream as _Stream

__all__ = ["H2GrpcServer"]

log = logging.getLogger(__name__)

_OUR_STREAM_WINDOW = 1 << 24
_OUR_CONN_WINDOW = 1 << 30
_DATA_MESSAGE = struct.Struct(">BHBBIBI")  # frame length, type, flags, stream; gRPC flag, length
_RESPONSE_HEADERS = f.header_block([(":status", "200"), ("content-type", "application/grpc")])


class _Conn(asyncio.Protocol):
    def __init__(self, server: H2GrpcServer) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.preface = False
        self.streams: dict[int, _Stream] = {}
        self.decoder = HpackDecoder()
        self.send_window = 65535
        self.peer_initial_window = 65535
        self.max_frame = 16384
        self.recv_unacked = 0
        self.last_sid = 0
        self.fragment: tuple[int, int, bytearray] | None = None
        self.out: list[bytes] = []
        self.flush_scheduled = False

    # -- connection ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self.server._conns.add(self)
        self._write(
            f.settings({f.SETTINGS_INITIAL_WINDOW_SIZE: _OUR_STREAM_WINDOW,
                        f.SETTINGS_MAX_CONCURRENT_STREAMS: 1 << 20})
            + f.window_update(0, _OUR_CONN_WINDOW - 65535)
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._conns.discard(self)
        self.transport = None
        for st in self.streams.values():
            self._close_stream(st)
        self.streams.clear()

    def close(self) -> None:
        if self.transport is not None:
            self._write(f.goaway(self.last_sid, f.NO_ERROR))
            self._flush()
            self.transport.close()

    def _fail(self, code: int) -> None:
        """A connection error: GOAWAY, close, read nothing more (connection_lost cleans up)."""
        if self.transport is not None:
            self._write(f.goaway(self.last_sid, code))
            self._flush()
            self.transport.close()
            self.transport = None

    def _write(self, data: bytes) -> None:
        self.out.append(data)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_scheduled = False
        if self.out and self.transport is not None:
            self.transport.write(b"".join(self.out))
        self.out.clear()

    # -- inbound frames ----------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.preface:
            if len(buf) < 24:
                return
            if bytes(buf[:24]) != f.PREFACE:
                self._fail(f.PROTOCOL_ERROR)
                return
            del buf[:24]
            self.preface = True
        pos, end = 0, len(buf)
        while end - pos >= 9:
            length = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2]
            if length > 16384:
                self._fail(f.FRAME_SIZE_ERROR)
                return
            if end - pos - 9 < length:
                break
            ftype, flags = buf[pos + 3], buf[pos + 4]
            sid = int.from_bytes(buf[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
            payload = bytes(buf[pos + 9 : pos + 9 + length])
            pos += 9 + length
            self._frame(ftype, flags, sid, payload)
            if self.transport is None:
                return
        del buf[:pos]

    def _frame(self, ftype: int, flags: int, sid: int, payload: bytes) -> None:
        if self.fragment is not None and ftype != f.CONTINUATION:
            self._fail(f.PROTOCOL_ERROR)
        elif ftype == f.DATA:
            self._on_data(flags, sid, payload)
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
                self._fail(f.PROTOCOL_ERROR)
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
                for st in list(self.streams.values()):
                    if st.pending:
                        self._drain(st)
            else:
                st = self.streams.get(sid)
                if st is not None:
                    st.window += inc
                    self._drain(st)
        elif ftype == f.SETTINGS:
            if not flags & f.ACK:
                self._on_settings(payload)
        elif ftype == f.PING:
            if not flags & f.ACK:
                self._write(f.frame(f.PING, f.ACK, 0, payload))
        elif ftype == f.RST_STREAM:
            st = self.streams.pop(sid, None)
            if st is not None:
                self._close_stream(st)
        elif ftype == f.GOAWAY:
            pass  # the client stops opening streams; running ones finish
        # PRIORITY, PUSH_PROMISE and unknown types are ignored

    def _on_settings(self, payload: bytes) -> None:
        for i in range(0, len(payload) - 5, 6):
            key = int.from_bytes(payload[i : i + 2], "big")
            value = int.from_bytes(payload[i + 2 : i + 6], "big")
            if key == f.SETTINGS_INITIAL_WINDOW_SIZE:
                delta = value - self.peer_initial_window
                self.peer_initial_window = value
                for st in self.streams.values():
                    st.window += delta
            elif key == f.SETTINGS_MAX_FRAME_SIZE:
                self.max_frame = value
        self._write(f.frame(f.SETTINGS, f.ACK, 0))
        for st in list(self.streams.values()):
            if st.pending:
                self._drain(st)

    def _on_headers(self, sid: int, flags: int, block: bytes) -> None:
        try:
            headers = self.decoder.decode(block)
        except HpackError:  # a broken block breaks the connection's decoding state
            self._fail(f.COMPRESSION_ERROR)
            return
        st = self.streams.get(sid)
        if st is None:
            if sid % 2 == 0 or sid <= self.last_sid:
                return
            self.last_sid = sid
            st = _Stream(sid, self.peer_initial_window)
            meta = []
            for name, value in headers:
                if name == ":path":
                    st.path = value
                elif not name.startswith(":"):
                    meta.append((name, value))
            st.metadata = tuple(meta)
            self.streams[sid] = st
        if flags & f.END_STREAM and st.task is None:
            st.task = self.loop.create_task(self._run(st))

    def _on_data(self, flags: int, sid: int, payload: bytes) -> None:
        size = len(payload)
        if flags & f.PADDED and payload:
            payload = payload[1 : len(payload) - payload[0]]
        self.recv_unacked += size
        if self.recv_unacked >= _OUR_CONN_WINDOW // 2:
            self._write(f.window_update(0, self.recv_unacked))
            self.recv_unacked = 0
        st = self.streams.get(sid)
        if st is None or st.task is not None:
            return
        st.body += payload
        st.recv += size
        if st.recv >= _OUR_STREAM_WINDOW // 2:
            self._write(f.window_update(sid, st.recv))
            st.recv = 0
        if flags & f.END_STREAM:
            st.task = self.loop.create_task(self._run(st))

    # -- outbound ----------------------------------------------------------------------------
    def _send_headers(self, st: _Stream) -> None:
        if not st.headers_sent:
            st.headers_sent = True
            self._write(f.frame(f.HEADERS, f.END_HEADERS, st.sid, _RESPONSE_HEADERS))

    def _send_message(self, st: _Stream, payload: bytes) -> bool:
        """Queue one message; False when flow control holds it (await ``_drained``)."""
        if not st.headers_sent:
            self._send_headers(st)
        m = len(payload)
        n = m + 5
        if not st.pending and n <= st.window and n <= self.send_window and n <= self.max_frame:
            st.window -= n
            self.send_window -= n
            # one pack: DATA frame header + the message's 5-byte gRPC prefix
            self._write(_DATA_MESSAGE.pack(n >> 16, n & 0xFFFF, 0, 0, st.sid, 0, m) + payload)
            return True
        st.pending.append(f.grpc_message(payload))
        self._drain(st)
        return not st.pending

    def _drain(self, st: _Stream) -> None:
        while st.pending and not st.done:
            item = st.pending[0]
            if type(item) is tuple:
                st.pending.popleft()
                self._write(f.frame(f.HEADERS, f.END_STREAM | f.END_HEADERS, st.sid, item[1]))
                self._finish(st)
                break
            allowed = min(st.window, self.send_window, self.max_frame)
            if allowed <= 0:
                return
            piece, rest = item[:allowed], item[allowed:]
            st.window -= len(piece)
            self.send_window -= len(piece)
            self._write(f.frame(f.DATA, 0, st.sid, piece))
            if rest:
                st.pending[0] = rest
            else:
                st.pending.popleft()
        if st.drained is not None and not st.pending:
            st.drained.set()

    async def _drained(self, st: _Stream) -> None:
        while st.pending and not st.done:
            st.drained = st.drained or asyncio.Event()
            st.drained.clear()
            await st.drained.wait()

    def _send_status(self, st: _Stream, code: int, message: str) -> None:
        fields = [("grpc-status", str(code))]
        if message:
            fields.append(("grpc-message", f.percent_encode(message)))
        if not st.headers_sent:  # trailers-only response
            st.headers_sent = True
            block = _RESPONSE_HEADERS + f.header_block(fields)
        else:
            block = f.header_block(fields)
        if st.pending:
            st.pending.append(("trailers", block))
            return
        self._write(f.frame(f.HEADERS, f.END_STREAM | f.END_HEADERS, st.sid, block))
        self._finish(st)

    def _finish(self, st: _Stream) -> None:
        st.done = True
        self.streams.pop(st.sid, None)

    def _close_stream(self, st: _Stream) -> None:
        st.done = True
        if st.drained is not None:
            st.drained.set()
        if st.task is not None and not st.task.done():
            st.task.cancel()

    # -- calls ----------------------------------------------------------------------------
    async def _run(self, st: _Stream) -> None:
        method = self.server.methods.get(st.path)
        if method is None:
            self._send_status(st, grpc.StatusCode.UNIMPLEMENTED.value[0], f"Method not found: {st.path}")
            return
        body = st.body
        if len(body) < 5 or body[0] != 0:
            code = grpc.StatusCode.UNIMPLEMENTED if body[:1] == b"\x01" else grpc.StatusCode.INTERNAL
            self._send_status(st, code.value[0], "compressed or malformed request message")
            return
        try:
            request = method.request_class.FromString(bytes(body[5 : 5 + int.from_bytes(body[1:5], "big")]))
        except Exception:
            self._send_status(st, grpc.StatusCode.INTERNAL.value[0], "cannot parse the request message")
            return
        ctx = _Context(self, st)
        try:
            if method.streaming:
                async for resp in method.handler(request, ctx):
                    if st.done:
                        return
                    if not self._send_message(st, resp.SerializeToString()):
                        await self._drained(st)
            else:
                resp = await method.handler(request, ctx)
                self._send_message(st, resp.SerializeToString())
            if not st.done:
                self._send_status(st, 0, "")
        except _Abort as exc:
            if not st.done:
                self._send_status(st, exc.code, exc.details)
        except _Reset:
            if not st.done:  # what was sent goes out first, then the stream breaks
                self._flush()
                self._finish(st)
                self.loop.call_later(0.02, self._write, f.rst_stream(st.sid, f.INTERNAL_ERROR))
        except asyncio.CancelledError:
            pass  # the client reset the stream or went away
        except NotImplementedError:
            self._send_status(st, grpc.StatusCode.UNIMPLEMENTED.value[0], f"{st.path} is not implemented")
        except Exception as exc:  # a bug in a handler: report it, keep the connection
            log.exception("gRPC handler %s failed", st.path)
            if not st.done:
                self._send_status(st, grpc.StatusCode.UNKNOWN.value[0], f"{type(exc).__name__}: {exc}")


class H2GrpcServer:
    """Serves servicers (instances of the generated ``*Servicer`` classes)."""

    def __init__(self) -> None:
        self.methods: dict[str, _Method] = {}
        self._conns: set[_Conn] = set()
        self._server: asyncio.base_events.Server | None = None

    def add_servicer(self, servicer: Any, service: Any) -> None:
        """``service``: the protobuf ServiceDescriptor ``servicer`` implements."""
        for m in service.methods:
            self.methods[f"/{service.full_name}/{m.name}"] = _Method(
                getattr(servicer, m.name),
                message_factory.GetMessageClass(m.input_type),
                m.server_streaming,
            )

    async def start(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Conn(self), host, port, reuse_address=True, backlog=4096
        )
        return self._server.sockets[0].getsockname()[1]

    async def stop(self, grace: float | None = None) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns):
            conn.close()
        if self._server is not None:
            await asyncio.sleep(0)
            self._server = None

    async def wait_for_termination(self) -> None:
        await asyncio.Event().wait()
