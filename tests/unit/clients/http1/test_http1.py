"""The lean HTTP/1.1 upstream client against scripted loopback servers: bodies whole,
chunked and streamed, keep-alive reuse, stale pooled connections, workers dying mid-body,
abandoned answers, timeouts, large bodies and back-pressure."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smg.clients import http1
from smg.clients.http import UpstreamClient, UpstreamConnectionError, request_head

from _http1_server import Request, Server, answer, chunked, echo


@pytest.fixture
async def client():
    c = UpstreamClient(request_timeout=10.0, connect_timeout=2.0)
    yield c
    await c.close()


async def serve(handler) -> Server:
    return await Server(handler).start()


async def test_whole_body_and_what_the_worker_receives(client):
    async def handler(req: Request, w) -> bool:
        w.write(answer(b'{"ok": true}', extra="X-Worker: a\r\n"))
        return True

    s = await serve(handler)
    resp = await client.send(s.url + "/v1/chat/completions", b'{"x": 1}', {"x-request-id": "r1", "authorization": "k"})
    assert resp.status == 200 and resp.content_length == 12 and resp.content_type == "application/json"
    assert (b"X-Worker", b"a") in resp.headers
    assert await resp.read() == b'{"ok": true}'
    req = s.requests[0]
    assert (req.method, req.path, req.body) == ("POST", "/v1/chat/completions", b'{"x": 1}')
    assert req.headers["host"] == s.url.removeprefix("http://")
    assert req.headers["x-request-id"] == "r1" and req.headers["authorization"] == "k"
    assert req.headers["content-length"] == "8"
    await s.stop()


async def test_keep_alive_reuses_one_connection_per_concurrent_request(client):
    s = await serve(echo)
    for i in range(5):
        resp = await client.send(s.url + f"/p{i}", b"abc", {})
        assert await resp.read() == b"POST /p%d 0 3" % i
    assert s.connections == 1
    # three at once need three connections; afterwards all three are reused
    for _ in range(2):
        resps = await asyncio.gather(*(client.send(s.url + "/c", b"", {}) for _ in range(3)))
        assert [(await r.read()).split()[-1] for r in resps] == [b"0"] * 3
    assert s.connections == 3
    assert not client._deadlines.pending  # finished requests leave no deadline behind
    await s.stop()


async def test_connection_close_and_body_to_eof_are_not_reused(client):
    async def handler(req: Request, w) -> bool:
        if req.path == "/eof":  # no length, not chunked: the body ends with the connection
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
            return False
        w.write(answer(b"bye", extra="Connection: close\r\n"))
        return False

    s = await serve(handler)
    resp = await client.send(s.url + "/eof", b"", {})
    assert resp.content_length is None and await resp.read() == b"until the end"
    resp = await client.send(s.url + "/close", b"", {})
    assert await resp.read() == b"bye"
    resp = await client.send(s.url + "/close", b"", {})
    assert await resp.read() == b"bye"
    assert s.connections == 3
    await s.stop()


async def test_sse_events_arrive_one_by_one(client):
    head, frames = chunked([b"data: 1\n\n", b"data: 2\n\n", b"data: [DONE]\n\n"])
    got_one = asyncio.Event()

    async def handler(req: Request, w) -> bool:
        w.write(head + frames[0])
        await got_one.wait()  # the second event only once the client has the first
        w.write(b"".join(frames[1:]))
        return True

    s = await serve(handler)
    resp = await client.send(s.url + "/v1/chat/completions", b"{}", {})
    assert resp.content_length is None and resp.content_type == "text/event-stream"
    chunks = []
    async for chunk in resp:
        chunks.append(chunk)
        got_one.set()
    assert chunks[0] == b"data: 1\n\n" and b"".join(chunks) == b"data: 1\n\ndata: 2\n\ndata: [DONE]\n\n"
    again = await client.send(s.url + "/again", b"", {})
    assert await again.read() == b"data: 1\n\ndata: 2\n\ndata: [DONE]\n\n"
    assert s.connections == 1  # the completed stream's connection was reused
    await s.stop()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(st.binary(min_size=0, max_size=300), max_size=12),
       cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=8),
       whole=st.booleans())
def test_chunked_body_survives_any_split_into_tcp_writes(pieces, cuts, whole):
    head, frames = chunked(pieces, "application/octet-stream")
    wire = head + b"".join(frames)
    bounds = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})

    async def handler(req: Request, w) -> bool:
        for a, b in zip(bounds, bounds[1:]):
            w.write(wire[a:b])
            await w.drain()
            await asyncio.sleep(0)  # let the client see each piece apart
        return True

    async def scenario() -> None:
        s = await serve(handler)
        c = UpstreamClient(request_timeout=10.0, connect_timeout=2.0)
        try:
            for _ in range(2):  # the second goes over the reused connection
                resp = await c.send(s.url + "/x", b"", {})
                body = await resp.read() if whole else b"".join([chunk async for chunk in resp])
                assert body == b"".join(pieces)
            assert s.connections == 1
        finally:
            await c.close()
            await s.stop()

    asyncio.run(scenario())


async def test_stale_pooled_connection_is_retried_on_a_fresh_one(client, monkeypatch):
    starts = []  # for each request sent: was its connection a pooled one
    start = http1._Conn.start
    monkeypatch.setattr(http1._Conn, "start", lambda conn, *a: starts.append(conn.reused) or start(conn, *a))
    s = await serve(echo)
    assert await (await client.send(s.url + "/a", b"", {})).read() == b"POST /a 0 0"
    # the worker closes the idle keep-alive; the client has not noticed yet (same loop,
    # no iteration in between), so the pooled connection is taken; the worker's socket
    # closes with the request unread and resets: the worker never saw it
    s.drop_connections()
    assert await (await client.send(s.url + "/b", b"", {})).read() == b"POST /b 1 0"
    assert starts == [False, True, False]  # sent on the stale one, then again on a new one
    s.drop_connections()
    await s.wait_ended(2)
    await asyncio.sleep(0)  # now the client may have seen it close: still a clean answer
    assert await (await client.send(s.url + "/c", b"", {})).read() == b"POST /c 2 0"
    assert s.connections == 3
    await s.stop()


async def test_a_reused_connection_failing_after_the_request_went_out_is_not_resent(client):
    # a worker that read the request and died (mid-generation) must not get it twice
    async def handler(req: Request, w) -> bool:
        if req.path == "/ok":
            return await echo(req, w)
        return False  # read the request, close without an answer

    s = await serve(handler)
    assert await (await client.send(s.url + "/ok", b"", {})).read() == b"POST /ok 0 0"
    with pytest.raises(UpstreamConnectionError):
        await client.send(s.url + "/generate", b"{}", {})
    assert [r.path for r in s.requests] == ["/ok", "/generate"]
    assert s.connections == 1
    await s.stop()


async def test_an_endless_response_head_is_an_error_not_memory(client):
    async def handler(req: Request, w) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nX-Big: ")
        with contextlib.suppress(ConnectionError):
            for _ in range(64):
                w.write(b"a" * 16384)
                await w.drain()
        await req.until_client_closes()
        return False

    s = await serve(handler)
    with pytest.raises(UpstreamConnectionError, match="head"):
        await client.send(s.url + "/x", b"", {})
    await s.wait_ended(1)
    await s.stop()


def test_an_idle_connection_closed_by_its_peer_reads_as_readable():
    a, b = socket.socketpair()
    with a, b:
        assert not http1._readable(FakeTransport(a))
        b.close()  # the FIN is pending on a
        assert http1._readable(FakeTransport(a))


class FakeTransport:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def get_extra_info(self, name: str):
        return self.sock if name == "socket" else None


async def test_a_fresh_connection_failing_unanswered_is_an_error(client):
    async def handler(req: Request, w) -> bool:
        return False  # read the request, close without an answer

    s = await serve(handler)
    with pytest.raises(UpstreamConnectionError):
        await client.send(s.url + "/x", b"{}", {})
    assert s.connections == 1  # not retried: the connection was new
    await s.stop()


async def test_unreachable_worker_is_a_connection_error(client):
    s = await serve(echo)
    url = s.url
    await s.stop()
    with pytest.raises(UpstreamConnectionError, match="cannot connect"):
        await client.send(url + "/x", b"", {})


async def test_connect_timeout():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)  # never accepts: once its backlog is full, a connect hangs
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            s.connect(("127.0.0.1", port))
        fillers.append(s)
    c = UpstreamClient(request_timeout=60.0, connect_timeout=0.3)
    try:
        task = asyncio.ensure_future(c.send(f"http://127.0.0.1:{port}/x", b"", {}))
        done, _ = await asyncio.wait({task}, timeout=20)
        assert task in done and isinstance(task.exception(), asyncio.TimeoutError)  # not the 60 s one
    finally:
        await c.close()
        for s in [listener, *fillers]:
            s.close()


@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_worker_dying_mid_body_is_an_error(client, framing):
    async def handler(req: Request, w) -> bool:
        if framing == "length":
            w.write(answer(b"x" * 100)[:-90])
        else:
            head, frames = chunked([b"data: 1\n\n", b"data: 2\n\n"])
            w.write(head + frames[0])
        await w.drain()
        return False

    s = await serve(handler)
    resp = await client.send(s.url + "/x", b"", {})
    if framing == "length":
        with pytest.raises(UpstreamConnectionError):
            await resp.read()
    else:
        it = aiter(resp)
        assert await anext(it) == b"data: 1\n\n"  # what came before the failure still arrives
        with pytest.raises(UpstreamConnectionError):
            await anext(it)
    await s.stop()


async def test_closing_an_unfinished_answer_closes_the_connection(client):
    head, frames = chunked([b"data: %d\n\n" % i for i in range(3)])

    async def handler(req: Request, w) -> bool:
        w.write(head + frames[0])
        await req.until_client_closes()  # the rest never comes
        return False

    s = await serve(handler)
    resp = await client.send(s.url + "/x", b"", {})
    assert await anext(aiter(resp)) == b"data: 0\n\n"
    resp.close()
    await s.wait_ended(1)  # the worker saw the connection go
    await s.stop()


async def test_cancelling_a_reader_closes_the_connection(client):
    head, frames = chunked([b"data: 0\n\n"])

    async def handler(req: Request, w) -> bool:
        w.write(head + frames[0])
        await req.until_client_closes()
        return False

    s = await serve(handler)

    async def consume() -> None:
        async for _ in await client.send(s.url + "/x", b"", {}):
            pass

    task = asyncio.ensure_future(consume())
    while not s.requests:
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await s.wait_ended(1)
    await s.stop()


async def test_timeouts_before_the_headers_and_mid_body(client):
    async def handler(req: Request, w) -> bool:
        if req.path == "/mid":
            w.write(answer(b"x" * 10)[:-5])
        await req.until_client_closes()
        return False

    s = await serve(handler)
    with pytest.raises(asyncio.TimeoutError):
        await client.request("POST", s.url + "/head", b"", {}, timeout=0.2)
    resp = await client.request("POST", s.url + "/mid", b"", {}, timeout=0.3)
    with pytest.raises(asyncio.TimeoutError):
        await resp.read()
    await s.wait_ended(2)  # both connections closed
    await s.stop()


async def test_large_bodies_both_ways(client):
    big = os.urandom(3 << 20)

    async def handler(req: Request, w) -> bool:
        w.write(answer(req.body[::-1], content_type="application/octet-stream"))
        await w.drain()
        return True

    s = await serve(handler)
    assert await (await client.send(s.url + "/x", big, {})).read() == big[::-1]
    streamed = b"".join([c async for c in await client.send(s.url + "/x", big, {})])
    assert streamed == big[::-1] and s.connections == 1
    await s.stop()


async def test_a_lagging_consumer_pauses_reading(client, monkeypatch):
    monkeypatch.setattr(http1, "HIGH_WATER", 64 * 1024)
    block = os.urandom(64 * 1024)
    total = 64 << 20  # more than the loopback socket buffers can hold
    head, _ = chunked([])
    sent = 0

    async def handler(req: Request, w) -> bool:
        nonlocal sent
        w.write(head)
        while sent < total:
            w.write(b"%x\r\n%s\r\n" % (len(block), block))
            sent += len(block)
            await w.drain()
        w.write(b"0\r\n\r\n")
        return True

    s = await serve(handler)
    resp = await client.send(s.url + "/x", b"", {})
    conn = resp._conn
    async with asyncio.timeout(10):
        while not conn.paused:  # nobody reads: the client stops reading from the socket
            await asyncio.sleep(0.005)
    assert resp._buffered < 64 * 1024 + 512 * 1024
    assert sent < total  # the worker is held back, not buffered in the gateway
    received = 0
    async for chunk in resp:
        received += len(chunk)
    assert received == total
    await s.stop()


async def test_an_answer_before_the_whole_body_was_sent_is_not_reused(client):
    async def handler(req: Request, w) -> bool:
        w.write(answer(b"too large", status=413))
        await req.until_client_closes()
        return False

    s = Server(handler, read_bodies=False)
    await s.start()
    resp = await client.send(s.url + "/x", bytes(32 << 20), {})  # more than the socket buffers hold
    assert resp.status == 413 and await resp.read() == b"too large"
    await s.wait_ended(1)  # the rest of that body must never reach the worker as a request
    s.read_bodies = True
    s.handler = echo
    assert await (await client.send(s.url + "/y", b"ok", {})).read() == b"POST /y 1 2"
    await s.stop()


async def test_informational_answer_is_skipped(client):
    async def handler(req: Request, w) -> bool:
        w.write(b"HTTP/1.1 100 Continue\r\n\r\n" + answer(b"done"))
        return True

    s = await serve(handler)
    resp = await client.send(s.url + "/x", b"{}", {})
    assert resp.status == 200 and await resp.read() == b"done"
    await s.stop()


async def test_garbage_answer_is_a_connection_error(client):
    async def handler(req: Request, w) -> bool:
        w.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        return True

    s = await serve(handler)
    with pytest.raises(UpstreamConnectionError, match="invalid HTTP"):
        await client.send(s.url + "/x", b"", {})
    await s.stop()


async def test_json_helpers_and_probe(client):
    async def handler(req: Request, w) -> bool:
        if req.path == "/health":
            w.write(answer(b"", status=503 if req.method != "GET" else 200))
        elif req.path == "/v1/models":
            w.write(answer(b'{"data": [{"id": "m"}]}'))
        else:
            w.write(answer(req.body, status=201))
        return True

    s = await serve(handler)
    assert await client.probe(s.url + "/health", 1.0) is True
    assert await client.get_json(s.url + "/v1/models", 1.0) == {"data": [{"id": "m"}]}
    assert await client.post_json(s.url + "/flush_cache", {"a": 1}, 1.0) == (201, {"a": 1})
    assert s.requests[0].method == "GET" and "content-length" not in s.requests[0].headers
    assert s.requests[2].headers["content-type"] == "application/json"
    url = s.url
    await s.stop()
    assert await client.probe(url + "/health", 1.0) is False
    assert await client.get_json(url + "/v1/models", 1.0) is None
    status, message = await client.post_json(url + "/flush_cache", {}, 1.0)
    assert status == 0 and "cannot connect" in message


def test_request_head_refuses_line_breaks():
    assert request_head("POST", "/p", "h:1", {"a": "b"}, b"xy") == (
        b"POST /p HTTP/1.1\r\nHost: h:1\r\na: b\r\nContent-Length: 2\r\n\r\n")
    with pytest.raises(ValueError):
        request_head("POST", "/p", "h:1", {"a": "b\r\nx-injected: 1"}, b"")
    with pytest.raises(ValueError):
        request_head("GET", "/p\nq", "h:1", {}, b"")
