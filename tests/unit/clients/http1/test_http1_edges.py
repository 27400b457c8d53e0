"""The lean HTTP/1.1 upstream client against workers that break framing, and against
origins named by DNS name (localhost) and by IPv6 loopback ([::1])."""

from __future__ import annotations

import asyncio
import socket

import pytest

from smg.clients.http import UpstreamClient, UpstreamConnectionError

from _http1_server import Request, Server, answer, echo


@pytest.fixture
async def client():
    c = UpstreamClient(request_timeout=10.0, connect_timeout=2.0)
    yield c
    await c.close()


async def test_a_body_longer_than_its_content_length_is_cut_and_not_reused(client):
    async def handler(req: Request, w) -> bool:
        if req.path == "/long":
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabcdefgh")
        else:
            await echo(req, w)
        await w.drain()
        return True

    s = await Server(handler).start()
    assert await (await client.send(s.url + "/long", b"", {})).read() == b"ab"
    # the bytes past the length must not be read as the next answer
    assert await (await client.send(s.url + "/next", b"", {})).read() == b"POST /next 1 0"
    assert s.connections == 2
    await s.stop()


async def test_chunked_garbage_is_an_error_and_the_connection_is_dropped(client):
    async def handler(req: Request, w) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\nzz\r\n")
        await w.drain()
        await req.until_client_closes()
        return False

    s = await Server(handler).start()
    resp = await client.send(s.url + "/x", b"", {})
    with pytest.raises(UpstreamConnectionError):
        await resp.read()
    await s.wait_ended(1)
    await s.stop()


async def test_several_informational_answers_then_the_final_one(client):
    async def handler(req: Request, w) -> bool:
        w.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
        w.write(answer(b"final", extra="X-Final: 1\r\n"))
        await w.drain()
        return True

    s = await Server(handler).start()
    resp = await client.send(s.url + "/x", b"{}", {})
    assert resp.status == 200 and await resp.read() == b"final"
    assert [n.lower() for n, _ in resp.headers] == [b"content-type", b"content-length", b"x-final"]
    await s.stop()


async def test_a_localhost_origin_resolves():
    server = await asyncio.start_server(_answer_ok, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = UpstreamClient(request_timeout=10.0, connect_timeout=2.0)
    try:
        resp = await client.send(f"http://localhost:{port}/x", b"", {})
        assert await resp.read() == b"ok"
    finally:
        await client.close()
        server.close()
        await server.wait_closed()


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
async def test_an_ipv6_loopback_origin():
    try:
        server = await asyncio.start_server(_answer_ok, "::1", 0)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    port = server.sockets[0].getsockname()[1]
    client = UpstreamClient(request_timeout=10.0, connect_timeout=2.0)
    try:
        resp = await client.send(f"http://[::1]:{port}/x", b"", {})
        assert await resp.read() == b"ok" and resp.status == 200
        assert seen_hosts[-1] == f"[::1]:{port}"  # the Host header keeps the brackets
    finally:
        await client.close()
        server.close()
        await server.wait_closed()


seen_hosts: list[str] = []


async def _answer_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.decode("latin-1").split("\r\n"):
        if line.lower().startswith("host:"):
            seen_hosts.append(line[5:].strip())
    writer.write(answer(b"ok", extra="Connection: close\r\n"))
    await writer.drain()
    writer.close()
