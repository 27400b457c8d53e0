"""The upstream client's limits: idle connections kept per worker, the whole response
head (not per read), a status outside 100-599, and the first-byte and between-chunks
timeouts (the deadline moves as the answer comes)."""

from __future__ import annotations

import asyncio

import pytest

from smg.clients import http1
from smg.clients.http import UpstreamClient
from smg.clients.http1 import UpstreamProtocolError

from _http1_server import Request, Server, echo


async def _with(handler, **client_kw):
    server = await Server(handler).start()
    client = UpstreamClient(request_timeout=10.0, connect_timeout=2.0, **client_kw)
    return server, client


async def test_idle_connections_per_worker_are_bounded(monkeypatch):
    monkeypatch.setattr(http1, "MAX_IDLE", 3)
    s, client = await _with(echo)
    resps = await asyncio.gather(*(client.send(s.url + "/c", b"", {}) for _ in range(6)))
    for r in resps:
        await r.read()
    assert s.connections == 6
    assert len(next(iter(client._pools.values())).idle) == 3
    await s.wait_ended(3)  # the three beyond the cap were closed
    await client.close()
    await s.stop()


@pytest.mark.parametrize("pieces", [1, 7])
async def test_a_head_over_the_limit_is_refused_however_it_is_split(pieces):
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(b"x-%d: %s\r\n" % (i, b"v" * 1000) for i in range(300))
    head += b"Content-Length: 2\r\n\r\n{}"

    async def handler(req: Request, w) -> bool:
        step = -(-len(head) // pieces)
        for i in range(0, len(head), step):
            w.write(head[i:i + step])
            await w.drain()
        return True

    s, client = await _with(handler)
    with pytest.raises(UpstreamProtocolError, match="head over"):
        await client.send(s.url + "/x", b"", {})
    await client.close()
    await s.stop()


@pytest.mark.parametrize("status", [b"999", b"099"])
async def test_a_status_outside_100_599_is_refused(status):
    async def handler(req: Request, w) -> bool:
        w.write(b"HTTP/1.1 %s Odd\r\nContent-Length: 2\r\n\r\n{}" % status)
        return True

    s, client = await _with(handler)
    with pytest.raises(UpstreamProtocolError, match="outside 100-599"):
        await client.send(s.url + "/x", b"", {})
    await client.close()
    await s.stop()


async def test_first_byte_timeout_then_the_silence_limit_per_chunk():
    go = asyncio.Event()

    async def handler(req: Request, w) -> bool:
        if req.path == "/late":
            await go.wait()
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"8\r\ndata: 1\n\r\n")
        await w.drain()
        await req.until_client_closes()  # and then nothing
        return False

    s, client = await _with(handler, first_byte_timeout=0.2, idle_timeout=0.3)
    with pytest.raises(asyncio.TimeoutError):
        await client.send(s.url + "/late", b"", {})
    resp = await client.send(s.url + "/now", b"", {})
    assert await resp.__anext__() == b"data: 1\n"
    with pytest.raises(asyncio.TimeoutError):
        await resp.__anext__()
    go.set()
    await client.close()
    await s.stop()
