"""A lean gRPC worker client: the ``GrpcWorkerClient`` API over smg's own HTTP/2.

grpc.aio spends ~205 µs of CPU per unary call and ~25 µs per streamed message; this
client keeps one HTTP/2 connection per worker (``h2conn.H2Connection``), writes each
call as one precomputed HEADERS block and one DATA frame, and parses responses with
the upb-backed protobuf classes. Wire-compatible with any gRPC server (h2c, prior
knowledge, uncompressed messages).

    client = LeanGrpcWorkerClient("grpc://127.0.0.1:30001", "sglang")
    async for item in client.generate(params):   # Chunk ... Complete
        ...

Errors are what ``GrpcWorkerClient`` raises: ``WorkerCallError`` from ``generate``
(``retryable`` when a retryable status came before the first message) and
``grpc.aio.AioRpcError`` from the unary admin calls (``health`` answers False).
Leaving ``generate`` early resets the stream (RST_STREAM CANCEL) and sends Abort.
A lost connection fails its calls with UNAVAILABLE; the next call reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf import message_factory

from smg._fast import grpcwire
from smg._proto import common_pb2, sglang_scheduler_pb2 as sg, vllm_engine_pb2 as vl
from smg.clients.grpc import _RETRYABLE, GrpcWorkerClient, grpc_target
from smg.clients.grpc_types import Chunk, Complete, GenParams, WorkerCallError, http_status
from smg.clients.h2conn import OK, Call, H2Connection
from smg.h2 import frames as f

__all__ = ["LeanGrpcWorkerClient"]

_SERVICES = {"sglang": sg.DESCRIPTOR.services_by_name["SglangScheduler"],
             "vllm": vl.DESCRIPTOR.services_by_name["VllmEngine"]}
_CODES = {c.value[0]: c for c in grpc.StatusCode}
# the Python twin is slower than upb: use the kernel only when compiled
_decode_chunk = grpcwire.decode_chunk if grpcwire.IMPLEMENTATION == "cython" else None
_decode_chunks = grpcwire.decode_chunks if grpcwire.IMPLEMENTATION == "cython" else None
_encode_tokenized = grpcwire.encode_tokenized if grpcwire.IMPLEMENTATION == "cython" else None


def _code(status: int) -> grpc.StatusCode:
    return _CODES.get(status, grpc.StatusCode.UNKNOWN)


def _rpc_error(call: Call) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(_code(call.status or 0), grpc.aio.Metadata(), grpc.aio.Metadata(),
                                call.details)


def _expire(conn: H2Connection, call: Call) -> None:
    if call.status is None:
        conn.reset(call)
        call.status, call.details = grpc.StatusCode.DEADLINE_EXCEEDED.value[0], "Deadline Exceeded"


class _Stub:
    """``client._stub.Method(request, timeout=...)`` for every unary rpc of the service,
    as a grpc stub offers them (the gateway's backend probes services this way)."""

    def __init__(self, client: LeanGrpcWorkerClient) -> None:
        self._client = client

    def __getattr__(self, name: str):
        method = self._client._service.methods_by_name.get(name)
        if method is None or method.server_streaming:
            raise AttributeError(name)
        response_class = message_factory.GetMessageClass(method.output_type)

        def call(request, timeout: float | None = None):
            return self._client._unary(name, request, response_class, timeout)

        setattr(self, name, call)  # found directly from now on
        return call


class LeanGrpcWorkerClient(GrpcWorkerClient):
    def __init__(self, url: str, proto: str = "sglang", *, window: int = 1 << 24,
                 conn_window: int = 1 << 30, max_frame: int = 1 << 20,
                 keepalive_s: float = 30.0, keepalive_timeout_s: float = 10.0) -> None:
        # not GrpcWorkerClient.__init__: no grpc channel; build_request and _item are shared
        if proto not in _SERVICES:
            raise ValueError(f"unknown gRPC worker protocol {proto!r}")
        self.url = url
        self.proto = proto
        self._pb = sg if proto == "sglang" else vl
        self._service = _SERVICES[proto]
        target = grpc_target(url)
        host, _, port = target.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"gRPC worker URL needs host:port, got {url!r}")
        self._host, self._port = host.strip("[]"), int(port)
        self._authority = target
        self._h2_options = {"window": window, "conn_window": conn_window, "max_frame": max_frame,
                            "keepalive_s": keepalive_s, "keepalive_timeout_s": keepalive_timeout_s}
        self.connect_timeout = 10.0
        self._conn: H2Connection | None = None
        self._connecting: asyncio.Future | None = None
        self._headers: dict[tuple[str, int], bytes] = {}
        self._stub = _Stub(self)
        self._parse_generate = self._pb.GenerateResponse.FromString
        self._tokenized_field = self._pb.GenerateRequest.DESCRIPTOR.fields_by_name["tokenized"].number
        response = self._pb.GenerateResponse.DESCRIPTOR
        self._chunk_fields = (response.fields_by_name["chunk"].number,
                              response.fields_by_name["complete"].number,
                              response.fields_by_name["chunk"].message_type.fields_by_name["index"].number)
        self._gen_block = self._header_block("Generate", None)
        self._tasks: set[asyncio.Task] = set()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(conn.lost), 1.0)

    # -- transport ---------------------------------------------------------------------
    def _header_block(self, method: str, timeout: float | None) -> bytes:
        key = (method, -1 if timeout is None else max(1, int(timeout * 1000)))
        block = self._headers.get(key)
        if block is None:
            fields = [(":method", "POST"), (":scheme", "http"),
                      (":path", f"/{self._service.full_name}/{method}"),
                      (":authority", self._authority), ("content-type", "application/grpc"),
                      ("te", "trailers"), ("user-agent", "smg-lean-grpc")]
            if key[1] >= 0:
                fields.append(("grpc-timeout", f"{min(key[1], 99_999_999)}m"))
            block = self._headers[key] = f.header_block(fields)
        return block

    async def _connection(self) -> H2Connection:
        conn = self._conn
        if conn is not None and not conn.closed:
            if conn.has_slot():
                return conn
            await conn.wait_slot()
            return await self._connection()
        return await self._connect()

    async def _connect(self) -> H2Connection:
        """One connection attempt at a time; concurrent callers share its outcome."""
        if self._connecting is None:
            loop = asyncio.get_running_loop()
            pending = self._connecting = loop.create_future()
            try:
                async with asyncio.timeout(self.connect_timeout):  # TimeoutError is an OSError
                    _, conn = await loop.create_connection(
                        lambda: H2Connection(**self._h2_options), self._host, self._port)
                self._conn = conn
                pending.set_result(conn)
                return conn
            except BaseException as exc:
                pending.set_exception(exc if isinstance(exc, OSError)
                                      else ConnectionError("connection attempt cancelled"))
                pending.exception()  # marked retrieved: waiters get it by awaiting
                raise
            finally:
                self._connecting = None
        return await asyncio.shield(self._connecting)

    async def _start(self, block: bytes, request: Any) -> tuple[H2Connection, Call]:
        """Open a call; ``request``: a message, or its serialized bytes."""
        conn = self._conn
        if conn is None or conn.closed or not conn.has_slot():
            conn = await self._connection()
        body = request if type(request) is bytes else request.SerializeToString()
        return conn, conn.open(block, f.grpc_message(body))

    def _generate_request(self, p: GenParams) -> bytes:
        if _encode_tokenized is None:
            return self.build_request(p).SerializeToString()
        # the prompt ids packed by the kernel (~9 ns per id; upb takes ~40), appended
        # to the rest (protobuf reads fields in any order)
        return self._request_head(p).SerializeToString() + _encode_tokenized(
            self._tokenized_field, p.original_text, p.input_ids)

    async def _finished(self, conn: H2Connection, call: Call, timeout: float | None) -> None:
        """Wait for ``call``'s status; past ``timeout`` reset it as DEADLINE_EXCEEDED."""
        if call.status is not None:
            return
        timer = None if timeout is None else conn.loop.call_later(timeout, _expire, conn, call)
        try:
            while call.status is None:
                call.waiter = waiter = conn.loop.create_future()
                await waiter
        except BaseException:
            conn.reset(call)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    async def _unary(self, method: str, request: Any, response_class: Any, timeout: float | None):
        try:
            conn, call = await self._start(self._header_block(method, timeout), request)
        except OSError as exc:
            raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(),
                                       grpc.aio.Metadata(), f"failed to connect: {exc}") from None
        await self._finished(conn, call, timeout)
        if call.status != OK:
            raise _rpc_error(call)
        if len(call.messages) != 1:
            raise grpc.aio.AioRpcError(grpc.StatusCode.INTERNAL, grpc.aio.Metadata(),
                                       grpc.aio.Metadata(),
                                       f"expected one response message, got {len(call.messages)}")
        return response_class.FromString(call.messages[0])

    # -- admin -------------------------------------------------------------------------
    async def health(self, timeout: float = 5.0) -> bool:
        try:
            resp = await self._stub.HealthCheck(self._pb.HealthCheckRequest(), timeout=timeout)
        except grpc.aio.AioRpcError:
            return False
        return bool(resp.healthy)

    async def abort(self, request_id: str) -> None:
        if self.proto == "sglang":
            req = sg.AbortRequest(request_id=request_id, reason="client disconnected")
        else:
            req = vl.AbortRequest(request_ids=[request_id])
        with contextlib.suppress(grpc.aio.AioRpcError):
            await self._stub.Abort(req, timeout=5.0)

    async def get_tokenizer_zip(self, timeout: float = 60.0) -> tuple[bytes, str]:
        """The worker's tokenizer files as a zip, and the sha256 it announced."""
        try:
            conn, call = await self._start(self._header_block("GetTokenizer", timeout),
                                           common_pb2.GetTokenizerRequest())
        except OSError as exc:
            raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(),
                                       grpc.aio.Metadata(), f"failed to connect: {exc}") from None
        await self._finished(conn, call, timeout)
        if call.status != OK:
            raise _rpc_error(call)
        buf = io.BytesIO()
        sha = ""
        for raw in call.messages:
            chunk = common_pb2.GetTokenizerChunk.FromString(raw)
            buf.write(chunk.data)
            if chunk.sha256:
                sha = chunk.sha256
        return buf.getvalue(), sha

    # -- generate ----------------------------------------------------------------------
    async def generate(self, params: GenParams) -> AsyncIterator[Chunk | Complete]:
        """Stream one request. Stopping iteration early aborts it on the worker."""
        stream = await self.stream(params)
        try:
            while True:
                for item in stream.take(merge=False):
                    yield Chunk(*item) if type(item) is tuple else item
                if stream.ended:
                    return
                await stream.wait()
        finally:
            await stream.aclose()

    async def stream(self, params: GenParams) -> GenerateStream:
        """Start one request, to be read a batch at a time (``GenerateStream``)."""
        try:
            conn, call = await self._start(self._gen_block, self._generate_request(params))
        except OSError as exc:
            raise WorkerCallError(f"worker {self.url}: UNAVAILABLE: failed to connect: {exc}",
                                  status=502, retryable=True) from None
        return GenerateStream(self, conn, call, params.request_id)

    async def _abort_then_reset(self, conn: H2Connection, call: Call, request_id: str) -> None:
        try:
            await self.abort(request_id)
        finally:
            conn.reset(call)


class GenerateStream:
    """A running Generate call read a worker read at a time (``ItemStream``'s interface).

    ``take()`` returns every response that arrived since the last take: with the
    compiled grpcwire kernel each run of plain chunks of one choice as one tuple
    ``(index, token_ids, prompt_tokens, completion_tokens, cached_tokens, marks)``
    (``grpcwire.decode_chunks``; ``take(merge=False)``: one tuple of ``Chunk``'s first
    five fields per chunk), anything else as ``Chunk``/``Complete``. Once the call
    ended and everything was taken, ``ended`` is set, or ``take()`` raises its
    ``WorkerCallError``. ``wait()`` returns a future that completes when more arrived;
    ``aclose()`` before the end aborts the request on the worker and resets the stream.
    """

    __slots__ = ("_client", "_conn", "_call", "_request_id", "_got_any", "_bad", "_expired", "ended")

    def __init__(self, client: LeanGrpcWorkerClient, conn: H2Connection, call: Call, request_id: str) -> None:
        self._client = client
        self._conn = conn
        self._call = call
        self._request_id = request_id
        self._got_any = False
        self._bad = False  # an unparsable message came: raised after what came before it
        self._expired: WorkerCallError | None = None  # the gateway gave up waiting (expire)
        self.ended = False

    async def first(self) -> None:
        """Wait for the first response (or the end); a failure before any raises."""
        call = self._call
        while not call.messages and call.status is None and not self._bad:
            await self.wait()
        if self._bad or (not call.messages and call.status != OK):
            self.take()

    def wait(self) -> asyncio.Future:
        call = self._call
        fut = self._conn.loop.create_future()
        if call.messages or call.status is not None or self._bad:
            fut.set_result(None)
        else:
            call.waiter = fut
        return fut

    def listen(self, listener: Callable[[], bool] | None) -> None:
        """While a ``wait()`` future is pending, call ``listener()`` inside the connection's
        read when messages arrive; it returns True when it took them (the future keeps
        waiting), False to complete the future as usual (see ``Call.listener``)."""
        self._call.listener = listener

    def take(self, merge: bool = True) -> list:
        call = self._call
        messages = call.messages
        out: list = []
        if self._bad:
            raise self._unparsable()
        if messages:
            client = self._client
            if merge and _decode_chunks is not None:
                out = _decode_chunks(messages, *client._chunk_fields)
                messages.clear()
                if len(out) != 1 or type(out[0]) is not tuple:  # not just one run of chunks
                    out = self._general(out)
            else:
                chunk_field, complete_field, index_field = client._chunk_fields
                while messages:
                    raw = messages.popleft()
                    if _decode_chunk is not None:
                        t = _decode_chunk(raw, chunk_field, complete_field, index_field)
                        if t is not None:
                            out.append(t)
                            continue
                    item = self._parse(raw)
                    if self._bad:
                        break
                    if item is not None:
                        out.append(item)
            if not out and self._bad:
                raise self._unparsable()
        if out:
            self._got_any = True
        elif call.status is not None and not messages and not self.ended:
            self.ended = True
            if call.status != OK:
                code = _code(call.status)
                status = http_status(code.name)
                raise WorkerCallError(f"worker {self._client.url}: {code.name}: {call.details}",
                                      status=status, retryable=not self._got_any and code in _RETRYABLE)
        return out

    def _general(self, items: list) -> list:
        """``decode_chunks``' output with what it left as bytes parsed the general way."""
        out = []
        for item in items:
            if type(item) is bytes:
                item = self._parse(item)
                if self._bad:
                    break  # what came before it first; the rest is lost anyway
                if item is None:
                    continue
            out.append(item)
        return out

    def _parse(self, raw: bytes) -> Chunk | Complete | None:
        """One response through upb (None: neither a chunk nor a complete); an
        unparsable one marks the stream broken."""
        client = self._client
        try:
            return client._item(client._parse_generate(raw))
        except Exception:  # protobuf's DecodeError
            self._bad = True
            return None

    def _unparsable(self) -> WorkerCallError:
        if self._expired is not None:
            return self._expired
        return WorkerCallError(f"worker {self._client.url}: INTERNAL: unparsable response",
                               retryable=not self._got_any)

    def expire(self, error: WorkerCallError) -> None:
        """Fail the stream with ``error`` (a timeout): the reader waiting is woken and its
        next ``take()`` raises it (through the broken-stream path: no check per read);
        ``aclose()`` then aborts the request on the worker."""
        if self.ended:
            return
        self._expired = error
        self._bad = True
        call = self._call
        waiter, call.waiter = call.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def aclose(self) -> None:
        call = self._call
        if not self.ended and call.status is None:
            # Abort first, then reset: a worker whose handler is cancelled by the reset
            # may drop the request without seeing it as aborted.
            self.ended = True
            client, conn = self._client, self._conn
            conn.discard(call)
            task = conn.loop.create_task(client._abort_then_reset(conn, call, self._request_id))
            client._tasks.add(task)
            task.add_done_callback(client._tasks.discard)
