"""smg.http.h1server.H1Protocol: HTTP/1.1 semantics on a recording transport (what is
written, in how many writes, when the connection closes), and over a real socket."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from types import SimpleNamespace

import pytest
from uvicorn.server import ServerState

from smg.http.h1server import HIGH_WATER, H1Protocol
from smg.serve import ServerThread


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.reading = True

    def write(self, data) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name, default=None):
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    @property
    def data(self) -> bytes:
        return b"".join(self.writes)


def connect(app, keep_alive: float = 5.0) -> tuple[H1Protocol, Transport, ServerState]:
    config = SimpleNamespace(loaded=True, loaded_app=app, root_path="", timeout_keep_alive=keep_alive,
                             limit_concurrency=None)
    state = ServerState()
    proto = H1Protocol(config, state, {})
    transport = Transport()
    proto.connection_made(transport)
    return proto, transport, state


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.001)


async def settle(state: ServerState) -> None:
    await until(lambda: not state.tasks)


def sized(body: bytes, status: int = 200):
    """An app answering ``body`` with a Content-Length (it leaves the request body unread)."""

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})
    return app


POST = b"POST /a%20b?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"


async def test_a_sized_response_is_one_write_and_the_scope_is_complete():
    seen = {}

    async def app(scope, receive, send):
        seen.update(scope, message=await receive())
        await sized(b"done")(scope, receive, send)

    proto, transport, state = connect(app)
    proto.data_received(POST)
    await settle(state)
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 4\r\n\r\ndone"]
    assert seen["method"] == "POST" and seen["path"] == "/a b" and seen["raw_path"] == b"/a%20b"
    assert seen["query_string"] == b"x=1" and seen["http_version"] == "1.1"
    assert (b"host", b"h") in seen["headers"] and seen["client"] == ("127.0.0.1", 50000)
    assert seen["message"] == {"type": "http.request", "body": b"hello", "more_body": False}
    assert not transport.closed and state.total_requests == 1


async def test_a_streamed_response_writes_its_head_at_once_and_chunks_the_body():
    gate = asyncio.Event()

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await gate.wait()
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    proto, transport, state = connect(app)
    proto.data_received(POST)
    await until(lambda: transport.writes)
    assert transport.data.endswith(b"transfer-encoding: chunked\r\n\r\n")  # before any event
    gate.set()
    await settle(state)
    assert transport.data.endswith(b"\r\n\r\n9\r\ndata: 1\n\n\r\n0\r\n\r\n")


async def test_pipelined_requests_are_answered_in_order():
    order = []

    async def app(scope, receive, send):
        order.append(scope["path"])
        await asyncio.sleep(0.01 if scope["path"] == "/1" else 0)
        await sized(scope["path"].encode())(scope, receive, send)

    proto, transport, state = connect(app)
    proto.data_received(b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n")
    await until(lambda: state.total_requests == 2)
    assert order == ["/1", "/2"]
    assert transport.data.index(b"\r\n\r\n/1") < transport.data.index(b"\r\n\r\n/2")


async def test_expect_100_continue_is_answered_when_the_body_is_read():
    async def app(scope, receive, send):
        assert (await receive())["body"] == b"hi"
        await sized(b"ok")(scope, receive, send)

    proto, transport, state = connect(app)
    proto.data_received(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    await until(lambda: transport.writes)
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    proto.data_received(b"hi")
    await settle(state)
    assert transport.data.endswith(b"\r\n\r\nok")


async def test_head_sends_no_body():
    proto, transport, state = connect(sized(b"hidden"))
    proto.data_received(b"HEAD / HTTP/1.1\r\n\r\n")
    await settle(state)
    assert transport.data.endswith(b"content-length: 6\r\n\r\n") and b"hidden" not in transport.data


async def test_http_1_0_and_connection_close_close_after_the_answer():
    for request in (b"GET / HTTP/1.0\r\n\r\n", b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"):
        proto, transport, state = connect(sized(b"x"))
        proto.data_received(request)
        await settle(state)
        assert b"connection: close\r\n" in transport.data and transport.closed


async def test_garbage_is_a_400_and_the_connection_closes():
    proto, transport, _ = connect(sized(b"x"))
    proto.data_received(b"NOT HTTP AT ALL\r\n\r\n")
    assert transport.data.startswith(b"HTTP/1.1 400 ") and transport.closed


async def test_a_waiting_receive_returns_disconnect_when_the_client_goes():
    got = asyncio.get_running_loop().create_future()

    async def app(scope, receive, send):
        await receive()  # the body
        got.set_result(await receive())  # waits for the client to go away

    proto, transport, state = connect(app)
    proto.data_received(POST)
    await asyncio.sleep(0)
    assert not got.done()
    proto.connection_lost(None)
    assert await asyncio.wait_for(got, 5) == {"type": "http.disconnect"}


async def test_a_large_body_pauses_reading_until_the_app_reads_it():
    received = []

    async def app(scope, receive, send):
        await until(lambda: not transport.reading)
        while True:
            message = await receive()
            received.append(message["body"])
            if not message["more_body"]:
                break
        await sized(b"ok")(scope, receive, send)

    proto, transport, state = connect(app)
    n = 3 * HIGH_WATER
    proto.data_received(b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % n)
    proto.data_received(b"x" * (HIGH_WATER + 1))
    await until(lambda: transport.reading)  # the app read it: reading again
    proto.data_received(b"x" * (n - HIGH_WATER - 1))
    await settle(state)
    assert sum(map(len, received)) == n and transport.data.endswith(b"ok")


async def test_idle_keep_alive_connections_close_after_the_timeout():
    proto, transport, state = connect(sized(b"x"), keep_alive=0.05)
    proto.data_received(b"GET / HTTP/1.1\r\n\r\n")
    await settle(state)
    await until(lambda: transport.closed)


async def test_shutdown_closes_idle_connections_and_lets_the_answer_in_flight_finish():
    gate = asyncio.Event()

    async def app(scope, receive, send):
        await gate.wait()
        await sized(b"last")(scope, receive, send)

    proto, transport, state = connect(app)
    proto.data_received(b"GET / HTTP/1.1\r\n\r\n")
    await asyncio.sleep(0)
    proto.shutdown()
    assert not transport.closed
    gate.set()
    await settle(state)
    assert b"connection: close\r\n" in transport.data and transport.data.endswith(b"last") and transport.closed
    idle, idle_transport, _ = connect(sized(b"x"))
    idle.shutdown()
    assert idle_transport.closed


async def test_app_errors_are_a_500_before_the_answer_and_a_cut_after():
    async def early(scope, receive, send):
        raise RuntimeError("boom")

    async def late(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("boom")

    proto, transport, state = connect(early)
    proto.data_received(b"GET / HTTP/1.1\r\n\r\n")
    await settle(state)
    assert transport.data.startswith(b"HTTP/1.1 500 ") and transport.closed
    proto, transport, state = connect(late)
    proto.data_received(b"GET / HTTP/1.1\r\n\r\n")
    await settle(state)
    assert transport.closed


@pytest.mark.parametrize("header", [(b"bad name", b"v"), (b"x-ok", b"line\r\nbreak")])
async def test_invalid_response_headers_are_refused(header):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [header]})

    proto, transport, state = connect(app)
    proto.data_received(b"GET / HTTP/1.1\r\n\r\n")
    await settle(state)
    assert b"line\r\nbreak" not in transport.data and b"bad name" not in transport.data and transport.closed


def test_over_a_real_socket_keep_alive_serves_many_requests() -> None:
    with ServerThread(sized(b"pong")) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            for _ in range(20):
                sock.sendall(b"GET /liveness HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = b""
                while not answer.endswith(b"pong"):
                    answer += sock.recv(4096)
                assert answer.startswith(b"HTTP/1.1 200 OK\r\n")


@pytest.mark.parametrize("server", ["uvicorn", "hypercorn"])
def test_no_date_or_server_header_is_formatted_per_response(server) -> None:
    with ServerThread(sized(b"pong"), server=server) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while not answer.endswith(b"pong"):
                answer += sock.recv(4096)
    head = answer.split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 200") and b"\r\ndate:" not in head and b"\r\nserver:" not in head
