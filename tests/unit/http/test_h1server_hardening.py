"""smg.http.h1server.H1Protocol against clients a public gateway meets: request smuggling
attempts, endless heads, clients that stall mid-head or stop reading, pipelining behind a
stream, HTTP/1.0, apps that misbehave, and writes after the client has gone."""

from __future__ import annotations

import asyncio

import pytest

from smg.http import h1server
from test_h1server import POST, connect, settle, sized, until


def streaming(gate: asyncio.Event):
    """An app answering with a chunked stream: one event, then the end once ``gate`` is set."""

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await gate.wait()
        await send({"type": "http.response.body", "body": b""})
    return app


@pytest.mark.parametrize("request_bytes", [
    # Content-Length and Transfer-Encoding together (CL.TE / TE.CL smuggling)
    b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /x HTTP/1.1\r\n\r\n",
    # two different lengths
    b"POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd",
    # a chunk size that is not hex, and one too large for any integer
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabcd\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\nab\r\n",
    # a bare LF inside the head, a space before the colon
    b"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n",
    b"GET / HTTP/1.1\r\nContent-Length : 4\r\n\r\nabcd",
])
async def test_smuggling_attempts_are_a_400_and_the_connection_closes(request_bytes):
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["path"])
        await sized(b"x")(scope, receive, send)

    proto, transport, state = connect(app)
    proto.data_received(request_bytes)
    await settle(state)
    assert b"HTTP/1.1 400 " in transport.data and transport.closed
    assert "/x" not in seen  # nothing smuggled through


@pytest.mark.parametrize("part", ["url", "header"])
async def test_an_endless_head_is_a_431_and_the_connection_closes(part):
    proto, transport, state = connect(sized(b"x"))
    proto.data_received(b"GET /" if part == "url" else b"GET / HTTP/1.1\r\nX-Big: ")
    piece = b"a" * 16384
    for _ in range(h1server.MAX_HEAD // len(piece) + 2):
        if transport.closed:
            break
        proto.data_received(piece)
    assert transport.data.startswith(b"HTTP/1.1 431 ") and transport.closed
    assert not state.tasks


async def test_a_head_just_under_the_limit_is_served():
    proto, transport, state = connect(sized(b"x"))
    proto.data_received(b"GET / HTTP/1.1\r\nX-Big: ")
    proto.data_received(b"a" * (h1server.MAX_HEAD - 1024))
    proto.data_received(b"\r\n\r\n")
    await settle(state)
    assert transport.data.startswith(b"HTTP/1.1 200 ") and not transport.closed


@pytest.mark.parametrize("sent", [b"", b"GET / HTTP/1.1\r\nHost: "])
async def test_a_client_silent_or_stalled_mid_head_is_closed_after_the_keep_alive_timeout(sent):
    proto, transport, state = connect(sized(b"x"), keep_alive=0.05)
    if sent:
        proto.data_received(sent)
    await until(lambda: transport.closed)
    assert not state.tasks


async def test_a_slow_app_is_not_cut_by_the_keep_alive_timeout():
    gate = asyncio.Event()

    async def app(scope, receive, send):
        await gate.wait()
        await sized(b"done")(scope, receive, send)

    proto, transport, state = connect(app, keep_alive=0.01)
    proto.data_received(b"GET / HTTP/1.1\r\n\r\n")
    await until(lambda: proto.idle_timer is None)  # the timer fired, found it busy, stopped
    assert not transport.closed
    gate.set()
    await settle(state)
    assert transport.data.endswith(b"done")


async def test_send_waits_while_the_client_does_not_read():
    sent = []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(3):
            await send({"type": "http.response.body", "body": b"%d" % i, "more_body": True})
            sent.append(i)
        await send({"type": "http.response.body", "body": b""})

    proto, transport, state = connect(app)
    proto.pause_writing()  # the transport is over its high-water mark
    proto.data_received(b"GET / HTTP/1.1\r\n\r\n")
    for _ in range(10):
        await asyncio.sleep(0)
    assert sent == [] and proto.cycle.write_now(b"x") is False
    proto.resume_writing()
    await settle(state)
    assert sent == [0, 1, 2] and transport.data.endswith(b"0\r\n\r\n")


async def test_pipelined_requests_wait_behind_a_stream_and_garbage_does_not_corrupt_it():
    gate = asyncio.Event()
    proto, transport, state = connect(streaming(gate))
    proto.data_received(b"GET /1 HTTP/1.1\r\n\r\n")
    await until(lambda: b"data: 1" in transport.data)
    proto.data_received(b"GET /2 HTTP/1.1\r\n\r\nNOT HTTP\r\n\r\n")
    assert b"400" not in transport.data and not transport.closed  # no error page mid-stream
    gate.set()
    await settle(state)
    # the stream ends whole, /2 is never answered, and the connection closes
    assert transport.data.endswith(b"0\r\n\r\n") and transport.data.count(b"HTTP/1.1") == 1
    assert transport.closed


async def test_pipelined_request_is_answered_after_the_stream_ends():
    gate = asyncio.Event()
    proto, transport, state = connect(streaming(gate))
    proto.data_received(b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n")
    await until(lambda: b"data: 1" in transport.data)
    assert transport.data.count(b"HTTP/1.1 200") == 1 and not transport.reading
    gate.set()
    await until(lambda: transport.data.count(b"HTTP/1.1 200") == 2)
    first, second = transport.data.split(b"HTTP/1.1 200")[1:]
    assert first.endswith(b"0\r\n\r\n")  # the stream ended before the next answer began


async def test_http_1_0_gets_no_chunked_encoding():
    gate = asyncio.Event()
    gate.set()
    proto, transport, state = connect(streaming(gate))
    proto.data_received(b"GET / HTTP/1.0\r\n\r\n")
    await settle(state)
    head, _, body = transport.data.partition(b"\r\n\r\n")
    assert b"chunked" not in head.lower() and body == b"data: 1\n\n" and transport.closed


@pytest.mark.parametrize("status", [204, 304])
async def test_no_body_statuses_have_no_framing(status):
    proto, transport, state = connect(sized(b"", status=status))
    proto.data_received(b"GET / HTTP/1.1\r\n\r\n")
    await settle(state)
    assert b"chunked" not in transport.data and not transport.closed


async def test_an_app_returning_without_an_answer_is_a_500():
    async def app(scope, receive, send):
        return None

    proto, transport, state = connect(app)
    proto.data_received(b"GET / HTTP/1.1\r\n\r\n")
    await settle(state)
    assert transport.data.startswith(b"HTTP/1.1 500 ") and transport.closed


async def test_a_client_gone_mid_stream_disconnects_and_write_now_refuses():
    gate = asyncio.Event()
    got = []

    async def app(scope, receive, send):
        await streaming(gate)(scope, receive, send)
        got.append(scope["extensions"]["smg.write"](b"late"))
        got.append(await receive())
        got.append(await receive())

    proto, transport, state = connect(app)
    proto.data_received(POST)
    await until(lambda: b"data: 1" in transport.data)
    proto.connection_lost(ConnectionResetError())
    gate.set()
    await settle(state)
    assert b"late" not in transport.data and got[0] is False
    assert got[2] == {"type": "http.disconnect"}
