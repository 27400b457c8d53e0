"""A lean gRPC server: HTTP/2 over asyncio, serving grpc.aio-style servicers.

grpc.aio spends hundreds of µs of CPU per call and tens per streamed message; a worker
that must never be what limits a gateway benchmark needs less. This server is the
server end of ``smg.h2.endpoint.H2Endpoint`` (the HTTP/2 core it shares with the lean
client: frames, message de-framing, flow control and protocol checks in the compiled
``h2wire`` kernel) for the part of HTTP/2 (RFC 9113) that gRPC over cleartext uses: the
connection preface, SETTINGS, PING, WINDOW_UPDATE flow control both ways,
HEADERS/CONTINUATION (decoded by ``hpackdec``), DATA, RST_STREAM (a cancelled call
cancels its handler) and GOAWAY.
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
import struct
from typing import Any

import grpc
from google.protobuf import message_factory

from smg._fast.h2wire import MESSAGE_COMPRESSED
from smg.engine.grpc.hpackdec import HpackDecoder, HpackError
from smg.engine.grpc.h2state import Abort as _Abort
from smg.engine.grpc.h2state import Context as _Context
from smg.engine.grpc.h2state import Method as _Method
from smg.engine.grpc.h2state import Reset as _Reset
from smg.engine.grpc.h2state import Stream as _Stream
from smg.h2 import frames as f
from smg.h2.endpoint import H2Endpoint

__all__ = ["H2GrpcServer"]

log = logging.getLogger(__name__)

_OUR_STREAM_WINDOW = 1 << 24
_OUR_CONN_WINDOW = 1 << 30
_MAX_MESSAGE = 256 * 1024 * 1024  # a request larger than this: RESOURCE_EXHAUSTED
_UNIMPLEMENTED = grpc.StatusCode.UNIMPLEMENTED.value[0]
_RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
_DATA_MESSAGE = struct.Struct(">BHBBIBI")  # frame length, type, flags, stream; gRPC flag, length
_RESPONSE_HEADERS = f.header_block([(":status", "200"), ("content-type", "application/grpc")])


class _Conn(H2Endpoint):
    def __init__(self, server: H2GrpcServer) -> None:
        super().__init__(max_frame=f.DEFAULT_MAX_FRAME, stream_window=_OUR_STREAM_WINDOW,
                         conn_window=_OUR_CONN_WINDOW, max_message=_MAX_MESSAGE, server=True)
        self.server = server
        self.decoder = HpackDecoder()

    # -- connection ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._attach(transport)
        self.server._conns.add(self)
        self._write(
            f.settings({f.SETTINGS_INITIAL_WINDOW_SIZE: _OUR_STREAM_WINDOW,
                        f.SETTINGS_MAX_CONCURRENT_STREAMS: 1 << 20})
            + f.window_update(0, _OUR_CONN_WINDOW - f.DEFAULT_WINDOW)
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

    # -- inbound (frames, flow control and checks: H2Endpoint and the h2wire kernel) -------
    def _on_headers(self, sid: int, flags: int, block: bytes) -> None:
        try:
            headers = self.decoder.decode(block)
        except HpackError:  # a broken block breaks the connection's decoding state
            self._fail(f.COMPRESSION_ERROR, "bad header block")
            return
        st = self.streams.get(sid)
        if st is None:
            if sid % 2 == 0 or sid <= self.last_sid:
                return  # (the kernel opens a stream on the same terms: nothing to close)
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
            self._start(st)

    def _on_messages(self, st: _Stream, messages: list[bytes], end: int) -> None:
        if st.task is not None:
            return
        if messages and st.body is None:
            st.body = messages[0]  # a unary request: one message (more are ignored)
        if end:
            self._start(st)

    def _on_stream_error(self, st: _Stream, reason: int) -> None:
        self.reader.close(st.sid)
        if st.task is None:  # answered in turn, after the calls that came before it
            code, why = ((_UNIMPLEMENTED, "compressed or malformed request message")
                         if reason == MESSAGE_COMPRESSED else
                         (_RESOURCE_EXHAUSTED, "request message larger than 256 MiB"))
            st.task = self.loop.create_task(self._refuse(st, code, why))

    def _on_reset(self, st: _Stream, code: int) -> None:
        self.streams.pop(st.sid, None)
        self.reader.close(st.sid)
        self._close_stream(st)

    def _start(self, st: _Stream) -> None:
        """The request is complete: run the handler (later DATA of the stream is dropped)."""
        self.reader.close(st.sid)
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
        if not st.pending and n <= st.window and n <= self.send_window and n <= self.peer_max_frame:
            st.window -= n
            self.send_window -= n
            # one pack: DATA frame header + the message's 5-byte gRPC prefix
            self._write(_DATA_MESSAGE.pack(n >> 16, n & 0xFFFF, 0, 0, st.sid, 0, m) + payload)
            return True
        st.pending.append(f.grpc_message(payload))
        self._resume(st)
        return not st.pending

    def _resume(self, st: _Stream) -> None:
        while st.pending and not st.done:
            item = st.pending[0]
            if type(item) is tuple:
                st.pending.popleft()
                self._write(f.frame(f.HEADERS, f.END_STREAM | f.END_HEADERS, st.sid, item[1]))
                self._finish(st)
                break
            allowed = min(st.window, self.send_window, self.peer_max_frame)
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
        self.reader.close(st.sid)

    def _close_stream(self, st: _Stream) -> None:
        st.done = True
        if st.drained is not None:
            st.drained.set()
        if st.task is not None and not st.task.done():
            st.task.cancel()

    # -- calls ----------------------------------------------------------------------------
    async def _refuse(self, st: _Stream, code: int, message: str) -> None:
        self._send_status(st, code, message)

    async def _run(self, st: _Stream) -> None:
        method = self.server.methods.get(st.path)
        if method is None:
            self._send_status(st, grpc.StatusCode.UNIMPLEMENTED.value[0], f"Method not found: {st.path}")
            return
        if st.body is None:
            self._send_status(st, grpc.StatusCode.INTERNAL.value[0], "compressed or malformed request message")
            return
        try:
            request = method.request_class.FromString(st.body)
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
