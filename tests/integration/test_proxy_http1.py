"""The gateway's HTTP/1.1 upstream client end to end: ``smg`` (uvicorn, uvloop) in front of
scripted workers that count their connections and see them close.

What the worker sees is the point: one keep-alive connection for sequential requests, a
connection it dropped while idle never costing the client an error, a client that goes
away mid-stream or a request that times out closing the worker's connection, and a
worker dying mid-body retried on another one before any byte reached the client.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import orjson
import pytest

from smg.app import create_app
from smg.config import GatewayConfig
from smg.serve import ServerThread

MODEL = "m"
CHAT = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})


@dataclass
class Call:
    path: str
    body: bytes
    conn: int  # the worker's connection number
    served: int  # requests this connection carried before
    reader: asyncio.StreamReader = field(repr=False)


Behaviour = Callable[[Call, asyncio.StreamWriter], Awaitable[bool]]


class Worker:
    """An HTTP/1.1 worker on its own loop and thread; ``behaviour`` answers the POSTs."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.calls: list[Call] = []
        self.connections = 0
        self.ended = 0
        self.loop = asyncio.new_event_loop()
        sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(asyncio.start_server(self._serve, sock=sock))
            started.set()
            self.loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        started.wait(5)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = self.connections
        self.connections += 1
        served = 0
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                method, path, _ = head.split(" ", 2)
                length = next((int(line.split(":", 1)[1]) for line in head.split("\r\n")
                               if line.lower().startswith("content-length:")), 0)
                body = await reader.readexactly(length)
                if method == "GET":
                    data = orjson.dumps({"data": [{"id": MODEL}]}) if path == "/v1/models" else b"{}"
                    writer.write(reply(data))
                    keep = True
                else:
                    call = Call(path, body, conn, served, reader)
                    self.calls.append(call)
                    keep = await self.behaviour(call, writer)
                served += 1
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.transport.abort()
            self.ended += 1


def reply(body: bytes, content_type: str = "application/json") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s" % (
        content_type.encode(), len(body), body)


async def answer(call: Call, w: asyncio.StreamWriter) -> bool:
    w.write(reply(orjson.dumps({"conn": call.conn})))
    return True


async def hang(call: Call, w: asyncio.StreamWriter) -> bool:
    """Send the start of an event stream, then nothing until the gateway closes."""
    w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"b\r\ndata: 1\n\n\n\r\n")
    while await call.reader.read(65536):
        pass
    return False


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


@pytest.fixture
def stack() -> Iterator[Callable[..., str]]:
    threads: list[ServerThread] = []
    workers: list[Worker] = []

    def start(*behaviours: Behaviour, **settings) -> tuple[str, list[Worker]]:
        ws = [Worker(b) for b in behaviours]
        workers.extend(ws)
        config = {"worker_urls": [w.url for w in ws], "policy": "round_robin", "disable_load_monitoring": True,
                  "disable_health_check": True, "retry_initial_backoff_ms": 1, **settings}
        thread = ServerThread(create_app(GatewayConfig.from_mapping(config)))
        threads.append(thread)
        return thread.start(), ws

    yield start
    for t in threads:
        t.request_stop()
    for t in threads:
        t.stop()
    for w in workers:
        w.stop()


def post(url: str, body: bytes = CHAT, timeout: float = 10) -> tuple[int, bytes]:
    req = urllib.request.Request(url + "/v1/chat/completions", data=body, method="POST",
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_sequential_requests_share_one_worker_connection(stack):
    gw, (w,) = stack(answer)
    for _ in range(10):
        assert post(gw)[0] == 200
    assert {c.conn for c in w.calls} == {w.calls[0].conn} and len(w.calls) == 10


def test_a_connection_the_worker_dropped_while_idle_costs_no_error(stack):
    async def drop_every_second(call: Call, w: asyncio.StreamWriter) -> bool:
        if call.served:  # as if its keep-alive timer fired just as this request came
            return False
        return await answer(call, w)

    gw, (w,) = stack(drop_every_second)  # one worker: no other to retry on
    for _ in range(6):
        assert post(gw)[0] == 200
    dropped = [c for c in w.calls if c.served]
    assert len(dropped) >= 5 and len(w.calls) == 6 + len(dropped)


def test_client_leaving_mid_stream_closes_the_worker_connection(stack):
    gw, (w,) = stack(hang)
    host, port = gw.removeprefix("http://").split(":")
    body = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True})
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        got = b""
        while b"data: 1" not in got:
            got += s.recv(65536)
    wait_for(lambda: w.ended >= 1)  # the worker saw its connection go


def test_timeout_answers_504_and_closes_the_worker_connection(stack):
    async def silent(call: Call, w: asyncio.StreamWriter) -> bool:
        while await call.reader.read(65536):
            pass
        return False

    gw, (w,) = stack(silent, request_timeout_secs=0.3, retry_max_retries=1)
    status, body = post(gw)
    assert status == 504 and orjson.loads(body)["error"]["type"]
    wait_for(lambda: w.ended >= 1)


def test_worker_dying_mid_body_is_retried_on_another(stack):
    async def die(call: Call, w: asyncio.StreamWriter) -> bool:
        w.write(reply(b'{"half": "an answer"}')[:-8])
        return False

    gw, (a, b) = stack(die, answer)
    for _ in range(4):
        status, body = post(gw)
        assert status == 200 and "conn" in orjson.loads(body)
    assert len(a.calls) >= 1 and len(b.calls) == 4


def test_client_leaving_before_a_whole_answer_closes_the_worker_connection(stack):
    async def silent(call: Call, w: asyncio.StreamWriter) -> bool:
        while await call.reader.read(65536):  # a long generation: no answer yet
            pass
        return False

    gw, (w,) = stack(silent)
    host, port = gw.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(CHAT), CHAT))
        wait_for(lambda: len(w.calls) == 1)
    wait_for(lambda: w.ended >= 1)  # the gateway saw the client go and dropped the worker request
    assert len(w.calls) == 1  # and did not send it again
