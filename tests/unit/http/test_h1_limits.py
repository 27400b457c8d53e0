"""smg.http.h1limits in smg's HTTP/1.1 server: the whole request head is limited however
it is split into reads (431), and a request body that trickles in is cut off (408) once
--body-read-timeout-secs has passed, on a recording transport and over real sockets
through the gateway."""

from __future__ import annotations

import asyncio
import socket
import time
from types import SimpleNamespace

import pytest
from uvicorn.server import ServerState

from smg.app import create_app
from smg.config import GatewayConfig
from smg.http import h1server
from smg.http.h1limits import head_too_large
from smg.serve import ServerThread
from test_h1server import Transport, settle, sized, until


def connect(app, body_timeout: float | None = None):
    config = SimpleNamespace(loaded=True, loaded_app=app, root_path="", timeout_keep_alive=5.0,
                             limit_concurrency=None)
    if body_timeout is not None:
        config.smg_body_read_timeout = body_timeout
    state = ServerState()
    proto = h1server.H1Protocol(config, state, {})
    transport = Transport()
    proto.connection_made(transport)
    return proto, transport, state


def reading(scope_seen: list):
    """An app that reads the whole body, then answers its length."""

    async def app(scope, receive, send):
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                scope_seen.append("disconnect")
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        scope_seen.append(len(body))
        await sized(b"%d" % len(body))(scope, receive, send)

    return app


def test_head_size_counts_every_line():
    headers = [(b"host", b"x"), (b"x-a", b"b" * 100)]
    size = len(b"/p") + len(b"CONNECT  HTTP/1.1\r\n\r\n") + (4 + 1 + 4) + (3 + 100 + 4)
    assert not head_too_large(b"/p", headers, size)
    assert head_too_large(b"/p", headers, size - 1)


@pytest.mark.parametrize("split", [1, 2, 7])
async def test_a_head_over_the_limit_is_a_431_however_it_is_split(split):
    """A 100 KB header line: in one read (the limit used to be checked only on the reads
    after the first, so this passed) or in ``split`` reads, the last completing the head."""
    seen: list = []
    proto, transport, state = connect(reading(seen))
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    n = split or 1
    pieces = [head[len(head) * i // n:len(head) * (i + 1) // n] for i in range(n)]
    assert b"".join(pieces) == head
    for piece in pieces:
        if transport.closed:
            break
        proto.data_received(piece)
    await settle(state)
    assert transport.data.startswith(b"HTTP/1.1 431 ") and transport.closed
    assert seen == []  # the app never saw it


async def test_a_head_just_under_the_limit_in_two_reads_passes():
    seen: list = []
    proto, transport, state = connect(reading(seen))
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (h1server.MAX_HEAD - 200) + b"\r\n\r\n"
    proto.data_received(head[:30_000])
    proto.data_received(head[30_000:])
    await settle(state)
    assert transport.data.startswith(b"HTTP/1.1 200 ") and not transport.closed


async def test_a_large_body_in_the_heads_read_is_no_431():
    seen: list = []
    proto, transport, state = connect(reading(seen))
    body = b"b" * 300_000
    proto.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    await settle(state)
    assert transport.data.startswith(b"HTTP/1.1 200 ") and seen == [300_000]


async def test_a_trickling_body_is_a_408_and_the_connection_closes():
    seen: list = []
    proto, transport, state = connect(reading(seen), body_timeout=0.2)
    proto.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
    t0 = time.monotonic()
    while not transport.closed:  # a byte every 10 ms: never silent, never done
        assert time.monotonic() - t0 < 10
        proto.data_received(b"c")
        await asyncio.sleep(0.01)
    await settle(state)
    assert transport.data.startswith(b"HTTP/1.1 408 ") and seen == ["disconnect"]


async def test_a_whole_body_arms_no_timer_and_zero_turns_the_limit_off():
    seen: list = []
    proto, transport, state = connect(reading(seen), body_timeout=0.05)
    proto.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab")
    await settle(state)
    assert seen == [2] and proto.active is None
    proto, transport, state = connect(reading(seen), body_timeout=0)
    proto.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
    await until(lambda: proto.active is not None and proto.active.waiters)
    assert proto.active.body_timer is None  # waiting, unbounded
    proto.data_received(b"cd")
    await settle(state)
    assert seen[-1] == 4


def test_slow_body_clients_on_the_gateway_are_all_closed():
    """Thirty clients send a chat request's head, then its body a byte at a time: each is
    answered 408 and closed; a normal request meanwhile is answered."""
    config = GatewayConfig.from_mapping({"worker_urls": ["http://127.0.0.1:9"], "disable_health_check": True,
                                         "disable_load_monitoring": True})
    with ServerThread(create_app(config), body_read_timeout=0.3) as url:
        host, port = url.removeprefix("http://").split(":")
        socks = []
        for _ in range(30):
            s = socket.create_connection((host, int(port)))
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 1000\r\n\r\n{")
            s.setblocking(False)
            socks.append(s)
        answers: dict[int, bytes] = {}
        deadline = time.monotonic() + 20
        while len(answers) < len(socks):
            assert time.monotonic() < deadline, f"{len(socks) - len(answers)} slow clients still open"
            for i, s in enumerate(socks):
                if i in answers:
                    continue
                try:
                    s.send(b" ")
                    data = s.recv(65536)
                except BlockingIOError:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    data = b""
                answers[i] = data
            time.sleep(0.02)
        for s in socks:
            s.close()
        assert all(a.startswith(b"HTTP/1.1 408 ") or a == b"" for a in answers.values())
        assert sum(a.startswith(b"HTTP/1.1 408 ") for a in answers.values()) >= 25
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(b"GET /liveness HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 200 ")


async def test_a_body_cut_off_is_no_error_in_the_log(caplog):
    """An app reading the body the Starlette way gets ClientDisconnect once the body
    timeout cut the client off: the server logs no ERROR (no traceback) for it."""
    from starlette.requests import Request

    async def app(scope, receive, send):
        await Request(scope, receive).body()  # raises ClientDisconnect

    proto, transport, state = connect(app, body_timeout=0.05)
    proto.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
    await until(lambda: transport.closed)
    await settle(state)
    assert transport.data.startswith(b"HTTP/1.1 408 ")
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
