"""The lean client against a worker that breaks HTTP/2: the call fails UNAVAILABLE with
the reason, the worker gets a GOAWAY with the HTTP/2 error code, and the next call gets
a new connection (the scripted ``h2``-package server of test_grpc_lean_h2, writing raw
bytes past its state machine)."""

from __future__ import annotations

import asyncio

import pytest

from smg.clients.grpc_types import GenParams, WorkerCallError
from smg.h2 import frames as f
from tests.unit.clients.test_grpc_lean_h2 import (OK_HEADERS, Conn, Server, _until, chunk, collect,
                                                  complete)

h2_events = pytest.importorskip("h2.events")

BROKEN = [
    (f.frame(f.PING, 0, 0, b"1234"), f.FRAME_SIZE_ERROR, "PING length not 8"),
    (f.frame(f.DATA, 0, 0, b"\0\0\0\0\0"), f.PROTOCOL_ERROR, "DATA on stream 0"),
    (f.frame(f.PUSH_PROMISE, f.END_HEADERS, 1, b"\0\0\0\2"), f.PROTOCOL_ERROR, "PUSH_PROMISE"),
    (((1 << 20) + 1).to_bytes(3, "big") + b"\0\0\0\0\0\1", f.FRAME_SIZE_ERROR, "larger than"),
]


@pytest.mark.parametrize("garbage,code,why", BROKEN)
async def test_a_protocol_error_fails_the_call_and_sends_goaway(garbage, code, why) -> None:
    state = {"n": 0}

    async def handler(conn: Conn, sid: int, path: str, body: bytes) -> None:
        state["n"] += 1
        if state["n"] == 1:
            conn.h2.send_headers(sid, OK_HEADERS)
            conn.h2.send_data(sid, chunk("a", 0))
            conn.flush()
            conn.writer.write(garbage)  # past h2's state machine: what a broken peer sends
        else:
            conn.reply(sid, [complete("b", 1)])

    async with Server(handler) as srv:
        client = srv.client()
        got: list = []
        with pytest.raises(WorkerCallError) as info:
            async with asyncio.timeout(10):
                async for item in client.generate(GenParams("a", [1])):
                    got.append(item)
        assert len(got) == 1
        assert "UNAVAILABLE" in info.value.message and why in info.value.message
        await asyncio.wait_for(_until(lambda: any(
            isinstance(e, h2_events.ConnectionTerminated) for e in srv.events)), 5)
        goaway = next(e for e in srv.events if isinstance(e, h2_events.ConnectionTerminated))
        assert goaway.error_code == code and why.encode() in goaway.additional_data
        (done,) = await collect(client, GenParams("b", [1]))  # a new connection works
        assert done.completion_tokens == 1 and len(srv.conns) == 2
        await client.close()
