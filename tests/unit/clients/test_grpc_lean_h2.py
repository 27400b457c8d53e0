"""The lean gRPC client's HTTP/2 against a scripted server built on the ``h2`` package:
what the reference worker never sends (CONTINUATION, padding, split messages, HTTP
errors, RST_STREAM codes, GOAWAY, PING, small windows, stream limits, dropped
connections, a changing HPACK dynamic table) and deadlines."""

from __future__ import annotations

import asyncio
import struct

import grpc
import pytest

from smg._proto import sglang_scheduler_pb2 as sg
from smg.clients.grpc_lean import LeanGrpcWorkerClient
from smg.clients.grpc_types import GenParams, WorkerCallError

h2_connection = pytest.importorskip("h2.connection")
import h2.config  # noqa: E402
import h2.errors  # noqa: E402
import h2.events  # noqa: E402
import h2.settings  # noqa: E402


def framed(msg) -> bytes:
    data = msg.SerializeToString()
    return struct.pack(">BI", 0, len(data)) + data


def chunk(rid: str, i: int) -> bytes:
    return framed(sg.GenerateResponse(request_id=rid, chunk=sg.GenerateStreamChunk(
        token_ids=[100 + i], prompt_tokens=3, completion_tokens=i + 1)))


def complete(rid: str, n: int) -> bytes:
    return framed(sg.GenerateResponse(request_id=rid, complete=sg.GenerateComplete(
        output_ids=[100 + n - 1], finish_reason="length", completion_tokens=n)))


OK_HEADERS = [(":status", "200"), ("content-type", "application/grpc")]


class Server:
    """Runs ``handler(server, stream_id, path, body)`` for each request it gets."""

    def __init__(self, handler, settings: dict | None = None) -> None:
        self.handler = handler
        self.settings = settings or {}
        self.conns: list[Conn] = []
        self.events: list = []
        self.bodies: list[bytes] = []
        self.open_streams = 0
        self.max_open = 0

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        for c in self.conns:
            c.writer.close()
        self.server.close()

    def client(self, **kw) -> LeanGrpcWorkerClient:
        return LeanGrpcWorkerClient(f"grpc://127.0.0.1:{self.port}", "sglang", **kw)

    async def _serve(self, reader, writer) -> None:
        conn = Conn(self, reader, writer)
        self.conns.append(conn)
        await conn.run()


class Conn:
    def __init__(self, server: Server, reader, writer) -> None:
        self.server, self.reader, self.writer = server, reader, writer
        self.h2 = h2_connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                                      header_encoding="utf-8"))
        self.deaf = False  # read and drop everything (a peer that stopped answering)
        self.paths: dict[int, str] = {}
        self.bodies: dict[int, bytearray] = {}

    def flush(self) -> None:
        self.writer.write(self.h2.data_to_send())

    async def run(self) -> None:
        self.h2.initiate_connection()
        if self.server.settings:
            self.h2.update_settings(self.server.settings)
        self.flush()
        while data := await self.reader.read(65536):
            if self.deaf:
                continue
            for ev in self.h2.receive_data(data):
                self.server.events.append(ev)
                if isinstance(ev, h2.events.RequestReceived):
                    self.paths[ev.stream_id] = dict(ev.headers)[":path"]
                    self.bodies[ev.stream_id] = bytearray()
                    self.server.open_streams += 1
                    self.server.max_open = max(self.server.max_open, self.server.open_streams)
                elif isinstance(ev, h2.events.DataReceived):
                    self.bodies[ev.stream_id] += ev.data
                    self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    body = bytes(self.bodies[ev.stream_id])
                    self.server.bodies.append(body)
                    asyncio.ensure_future(self._handle(ev.stream_id, body))
                elif isinstance(ev, (h2.events.StreamReset,)):
                    self.server.open_streams -= 1
            self.flush()

    async def _handle(self, sid: int, body: bytes) -> None:
        await self.server.handler(self, sid, self.paths[sid], body)
        self.flush()

    def reply(self, sid: int, messages: list[bytes], status: int = 0, message: str = "",
              pad: int | None = None) -> None:
        self.h2.send_headers(sid, OK_HEADERS)
        for m in messages:
            self.h2.send_data(sid, m, pad_length=pad)
        trailers = [("grpc-status", str(status))] + ([("grpc-message", message)] if message else [])
        self.h2.send_headers(sid, trailers, end_stream=True)
        self.server.open_streams -= 1


async def collect(client, params) -> list:
    return [item async for item in client.generate(params)]


async def test_split_padded_messages_and_continued_trailers() -> None:
    async def handler(conn: Conn, sid: int, path: str, body: bytes) -> None:
        data = b"".join(chunk("r", i) for i in range(5)) + complete("r", 5)
        conn.h2.send_headers(sid, OK_HEADERS)
        for i in range(0, len(data), 7):  # messages split across DATA frames, padded
            conn.h2.send_data(sid, data[i : i + 7], pad_length=3)
        long_message = "x%" * 20_000  # trailers over 16 KiB: HEADERS + CONTINUATION
        conn.h2.send_headers(sid, [("grpc-status", "0"), ("grpc-message", long_message)],
                             end_stream=True)

    async with Server(handler) as srv:
        client = srv.client(max_frame=16384)
        items = await collect(client, GenParams("r", [1, 2, 3]))
        assert [c.completion_tokens for c in items] == [1, 2, 3, 4, 5, 5]
        assert [t for c in items[:-1] for t in c.token_ids] == [100, 101, 102, 103, 104]
        await client.close()


async def test_error_statuses_map_like_grpc() -> None:
    async def handler(conn: Conn, sid: int, path: str, body: bytes) -> None:
        kind = sg.GenerateRequest.FromString(body[5:]).request_id
        if kind == "http503":
            conn.h2.send_headers(sid, [(":status", "503")], end_stream=True)
        elif kind == "refused":
            conn.h2.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
        elif kind == "invalid":  # trailers-only, percent-encoded message
            conn.h2.send_headers(sid, OK_HEADERS + [("grpc-status", "3"),
                                                    ("grpc-message", "bad %E2%9C%93 input")],
                                 end_stream=True)
        elif kind == "no-status":
            conn.h2.send_headers(sid, OK_HEADERS)
            conn.h2.send_data(sid, chunk(kind, 0))
            conn.h2.send_headers(sid, [("x-other", "1")], end_stream=True)

    async with Server(handler) as srv:
        client = srv.client()
        for rid, retryable, status, text in [("http503", True, 502, "UNAVAILABLE"),
                                             ("refused", True, 502, "UNAVAILABLE"),
                                             ("invalid", False, 400, "INVALID_ARGUMENT: bad \u2713 input"),
                                             ("no-status", False, 502, "UNKNOWN")]:
            with pytest.raises(WorkerCallError) as info:
                await collect(client, GenParams(rid, [1]))
            assert (info.value.retryable, info.value.status) == (retryable, status), rid
            assert text in info.value.message
        await client.close()


async def test_hpack_memo_follows_a_changing_dynamic_table() -> None:
    async def handler(conn: Conn, sid: int, path: str, body: bytes) -> None:
        rid = sg.GenerateRequest.FromString(body[5:]).request_id
        code = int(rid.split("-")[1]) % 3 + 5
        conn.reply(sid, [], status=code, message=f"message for {rid}")

    async with Server(handler) as srv:
        client = srv.client()
        for i in [0, 0, 1, 1, 2, 2, 0, 5, 7, 7]:  # repeats and new values, indexed by h2
            with pytest.raises(WorkerCallError) as info:
                await collect(client, GenParams(f"r-{i}", [1]))
            name = {5: "NOT_FOUND", 6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED"}[i % 3 + 5]
            assert info.value.message.endswith(f"{name}: message for r-{i}")
        await client.close()


async def test_small_server_window_and_frame_size_pace_a_large_request() -> None:
    async def handler(conn: Conn, sid: int, path: str, body: bytes) -> None:
        req = sg.GenerateRequest.FromString(body[5:])
        conn.reply(sid, [complete(req.request_id, len(req.tokenized.input_ids))])

    async with Server(handler, {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1000}) as srv:
        client = srv.client()
        prompt = list(range(100_000, 160_000))  # ~180 KB: several windows and frames
        (done,) = await collect(client, GenParams("big", prompt))
        assert done.completion_tokens == len(prompt)
        req = sg.GenerateRequest.FromString(srv.bodies[-1][5:])
        assert list(req.tokenized.input_ids) == prompt
        await client.close()


async def test_max_concurrent_streams_is_respected() -> None:
    release = asyncio.Event()
    calls = {"n": 0}

    async def handler(conn: Conn, sid: int, path: str, body: bytes) -> None:
        calls["n"] += 1
        if calls["n"] > 1:
            await release.wait()
        conn.reply(sid, [framed(sg.HealthCheckResponse(healthy=True))])

    async with Server(handler, {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 2}) as srv:
        client = srv.client()
        assert await client.health()  # the settings came before this answer
        waiting = [asyncio.ensure_future(client.health()) for _ in range(6)]
        await asyncio.wait_for(_until(lambda: srv.open_streams == 2), 5)
        release.set()
        assert await asyncio.gather(*waiting) == [True] * 6
        assert srv.max_open == 2
        await client.close()


async def test_ping_goaway_and_lost_connections() -> None:
    state = {"n": 0}

    async def handler(conn: Conn, sid: int, path: str, body: bytes) -> None:
        state["n"] += 1
        if state["n"] == 1:  # stream, PING, then the connection drops mid-stream
            conn.h2.send_headers(sid, OK_HEADERS)
            conn.h2.send_data(sid, chunk("a", 0))
            conn.h2.ping(b"12345678")
            conn.flush()
            await asyncio.wait_for(_until(lambda: any(
                isinstance(e, h2.events.PingAckReceived) for e in conn.server.events)), 5)
            conn.writer.close()
        elif state["n"] == 2:  # GOAWAY that excludes this stream
            conn.h2.close_connection(last_stream_id=0)
            conn.flush()
        else:
            conn.reply(sid, [complete("c", 1)])

    async with Server(handler) as srv:
        client = srv.client()
        got: list = []
        with pytest.raises(WorkerCallError) as info:
            async for item in client.generate(GenParams("a", [1])):
                got.append(item)
        assert len(got) == 1 and not info.value.retryable and "UNAVAILABLE" in info.value.message
        ack = next(e for e in srv.events if isinstance(e, h2.events.PingAckReceived))
        assert ack.ping_data == b"12345678"
        with pytest.raises(WorkerCallError) as info:
            await collect(client, GenParams("b", [1]))
        assert info.value.retryable and "GOAWAY" in info.value.message
        (done,) = await collect(client, GenParams("c", [1]))  # a third connection
        assert done.completion_tokens == 1 and len(srv.conns) == 3
        await client.close()


async def test_deadline_resets_the_stream() -> None:
    async def handler(conn: Conn, sid: int, path: str, body: bytes) -> None:
        await asyncio.sleep(10)

    async with Server(handler) as srv:
        client = srv.client()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.model_info(timeout=0.1)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        await asyncio.wait_for(_until(lambda: any(isinstance(e, h2.events.StreamReset)
                                                  for e in srv.events)), 5)
        headers = next(e for e in srv.events if isinstance(e, h2.events.RequestReceived)).headers
        assert ("grpc-timeout", "100m") in headers and ("te", "trailers") in headers
        await client.close()


async def _until(predicate) -> None:
    while not predicate():
        await asyncio.sleep(0.005)


async def test_keepalive_fails_calls_on_a_silent_connection() -> None:
    async def handler(conn: Conn, sid: int, path: str, body: bytes) -> None:
        conn.h2.send_headers(sid, OK_HEADERS)
        conn.h2.send_data(sid, chunk("k", 0))
        conn.flush()
        conn.deaf = True  # pings go unanswered

    async with Server(handler) as srv:
        client = srv.client(keepalive_s=0.05, keepalive_timeout_s=0.2)
        got: list = []
        with pytest.raises(WorkerCallError) as info:
            async with asyncio.timeout(10):
                async for item in client.generate(GenParams("k", [1])):
                    got.append(item)
        assert len(got) == 1 and "keepalive" in info.value.message and not info.value.retryable
        await client.close()


async def test_keepalive_pings_are_answered_while_calls_run() -> None:
    async def handler(conn: Conn, sid: int, path: str, body: bytes) -> None:
        await asyncio.wait_for(_until(lambda: sum(isinstance(e, h2.events.PingReceived)
                                                  for e in conn.server.events) >= 3), 5)
        conn.reply(sid, [complete("p", 1)])

    async with Server(handler) as srv:
        client = srv.client(keepalive_s=0.02, keepalive_timeout_s=1.0)
        (done,) = await collect(client, GenParams("p", [1]))
        assert done.completion_tokens == 1
        await client.close()
