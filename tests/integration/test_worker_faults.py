"""Proxy mode against workers that misbehave: garbage answers (a status outside 100-599,
a head over 256 KiB, a 200 that is not JSON, an event stream without ``[DONE]`` or cut
mid-event), silence (first-byte and between-chunks timeouts) and 5xx answers. The
gateway (uvicorn, its own HTTP/1.1 client) runs in front of scripted raw-socket workers
on loopback: a bad answer with nothing sent yet is retried on another worker, a stream
always ends with a parseable error event and ``[DONE]``, a worker that times out is
ejected at once, and a request counts at most once against each worker's breaker."""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import Awaitable, Callable, Iterator

import orjson
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from smg.app import create_app
from smg.config import GatewayConfig
from smg.serve import ServerThread

from test_client_errors import _bodies, _json
from test_proxy_http1 import Worker as ThreadedWorker

MODEL = "m"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
GOOD = orjson.dumps({"id": "good", "choices": []})

Handler = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawWorker(ThreadedWorker):
    """A worker that answers each POST with ``handler(head, reader, writer)`` (one request
    per connection); GETs (health, models) get a small JSON answer. ``heads`` keeps the
    POST heads it was sent."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.heads: list[bytes] = []
        super().__init__(None)  # type: ignore[arg-type] - this class answers by itself

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            if head.startswith(b"GET"):
                writer.write(_whole(b'{"data": [{"id": "m"}]}'))
            else:
                self.heads.append(head)
                await self.handler(head, reader, writer)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _whole(body: bytes, status: bytes = b"200 OK", content_type: bytes = b"application/json") -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (
        status, content_type, len(body), body)


def _sse_head() -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"


async def good(head, reader, writer) -> None:
    writer.write(_whole(GOOD))


async def status_999(head, reader, writer) -> None:
    writer.write(_whole(GOOD, status=b"999 Odd"))


async def huge_head(head, reader, writer) -> None:  # one write: the whole head in few reads
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 + b"".join(b"x-pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(300))
                 + b"Content-Length: %d\r\n\r\n%s" % (len(GOOD), GOOD))


async def not_json(head, reader, writer) -> None:
    writer.write(_whole(b'{"choices": [trunc'))


async def error_500(head, reader, writer) -> None:
    writer.write(_whole(b'{"error": "boom"}', status=b"500 Internal Server Error"))


async def sse_no_done(head, reader, writer) -> None:
    writer.write(_sse_head() + b'data: {"n": 1}\n\ndata: {"n": 2}\n\n')


async def sse_cut_mid_event(head, reader, writer) -> None:
    writer.write(_sse_head() + b'data: {"n": 1}\n\ndata: {"n": 2, "tr')
    await writer.drain()
    await asyncio.sleep(0.05)  # the cut comes in a later read than the event before it
    writer.transport.abort()


async def sse_empty(head, reader, writer) -> None:
    writer.write(_sse_head())


async def sse_good(head, reader, writer) -> None:
    writer.write(_sse_head() + b'data: {"n": 1}\n\ndata: {"n": 2}\n\ndata: [DONE]\n\n')


async def silent(head, reader, writer) -> None:
    await reader.read()  # until the gateway gives up and closes


async def sse_then_silent(head, reader, writer) -> None:
    writer.write(_sse_head() + b'data: {"n": 1}\n\n')
    await writer.drain()
    await reader.read()


class _Stack:
    """Gateways (one per test, usually) in front of raw workers; all stopped at the end."""

    def __init__(self) -> None:
        self.started: list[ServerThread | RawWorker] = []

    def __call__(self, *handlers: Handler, **settings) -> tuple[ServerThread, list[RawWorker]]:
        ws = [RawWorker(h) for h in handlers]
        settings = {"policy": "round_robin", "disable_load_monitoring": True, "disable_health_check": True,
                    "retry_initial_backoff_ms": 1, **settings, "worker_urls": [w.url for w in ws]}
        gw = ServerThread(create_app(GatewayConfig.from_mapping(settings)))
        self.started += [gw, *ws]
        gw.start()
        return gw, ws

    def stop(self) -> None:
        for item in self.started:
            item.stop()


@pytest.fixture
def stack() -> Iterator[_Stack]:
    s = _Stack()
    yield s
    s.stop()


def _request(gw: ServerThread, body: dict, headers: dict | None = None) -> tuple[int, bytes]:
    host, port = gw.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("POST", "/v1/chat/completions", orjson.dumps(body),
                     {"content-type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _workers(gw: ServerThread) -> dict[str, object]:
    return {w.url: w for w in gw.app.state.smg.registry.all()}


def _events(data: bytes) -> list[object]:
    """Every SSE event of a stream, each parsed (a partial or glued event fails here)."""
    assert data.endswith(b"\n\n"), data
    out = []
    for block in data.split(b"\n\n")[:-1]:
        assert block.startswith(b"data: "), (block, data)
        payload = block[len(b"data: "):]
        out.append("[DONE]" if payload == b"[DONE]" else json.loads(payload))
    return out


@pytest.mark.parametrize("bad", [status_999, huge_head, not_json, sse_empty], ids=lambda h: h.__name__)
def test_garbage_before_any_byte_is_retried_on_another_worker(stack, bad):
    gw, (bad_w, good_w) = stack(bad, good)
    for _ in range(4):  # round robin: the bad worker comes first in half of them
        status, body = _request(gw, CHAT)
        assert status == 200, body
        assert body == GOOD
    workers = _workers(gw)
    assert 1 <= len(bad_w.heads) <= 4 and len(good_w.heads) == 4  # each request once per worker
    assert workers[bad_w.url].breaker.consecutive_failures == len(bad_w.heads)
    assert workers[good_w.url].breaker.consecutive_failures == 0


@pytest.mark.parametrize("bad", [status_999, huge_head, not_json], ids=lambda h: h.__name__)
def test_garbage_with_no_other_worker_is_a_502(stack, bad):
    gw, (bad_w,) = stack(bad)
    status, body = _request(gw, CHAT)
    assert status == 502, body
    assert orjson.loads(body)["error"]["type"] == "upstream_error"
    assert len(bad_w.heads) == 1  # it answered: not asked again


@pytest.mark.parametrize("bad", [sse_no_done, sse_cut_mid_event], ids=lambda h: h.__name__)
def test_a_broken_stream_ends_with_an_error_event_and_done(stack, bad):
    gw, (bad_w,) = stack(bad)
    status, body = _request(gw, {**CHAT, "stream": True})
    assert status == 200
    events = _events(body)
    assert events[0] == {"n": 1}
    assert events[-1] == "[DONE]"
    assert events[-2]["error"]["type"] == "upstream_error"
    assert {"n": 2} in events if bad is sse_no_done else len(events) == 3  # the cut event is dropped
    assert _workers(gw)[bad_w.url].breaker.consecutive_failures == 1


def test_a_good_stream_is_relayed_as_is(stack):
    gw, _ = stack(sse_good)
    status, body = _request(gw, {**CHAT, "stream": True})
    assert status == 200
    assert body == b'data: {"n": 1}\n\ndata: {"n": 2}\n\ndata: [DONE]\n\n'


def test_silent_worker_times_out_to_first_byte_and_is_ejected(stack):
    gw, (stalled, good_w) = stack(silent, good, first_byte_timeout_secs=0.3)
    while not stalled.heads:  # round robin: within two requests one goes to the stalled worker
        assert _request(gw, CHAT) == (200, GOOD)
    workers = _workers(gw)
    assert workers[stalled.url].breaker.state == "open"  # ejected at once, not after probes
    for _ in range(3):  # everything goes to the good worker now
        assert _request(gw, CHAT) == (200, GOOD)
    assert len(stalled.heads) == 1


def test_silent_worker_alone_is_a_504(stack):
    gw, _ = stack(silent, first_byte_timeout_secs=0.2)
    status, body = _request(gw, CHAT)
    assert status == 504
    assert orjson.loads(body)["error"]["type"] == "timeout_error"


def test_stream_silent_between_chunks_ends_with_an_error_event(stack):
    gw, (w,) = stack(sse_then_silent, inter_token_timeout_secs=0.3)
    status, body = _request(gw, {**CHAT, "stream": True})
    assert status == 200
    events = _events(body)
    assert events[0] == {"n": 1} and events[-1] == "[DONE]"
    assert events[-2]["error"]["code"] == 504
    assert _workers(gw)[w.url].breaker.state == "open"


def test_a_request_failing_everywhere_counts_once_per_worker(stack):
    gw, ws = stack(error_500, error_500, retry_max_retries=5)
    status, body = _request(gw, CHAT)
    assert status == 500, body
    assert [len(w.heads) for w in ws] == [1, 1]  # 5 attempts allowed, but each worker once
    assert [b.breaker.consecutive_failures for b in _workers(gw).values()] == [1, 1]


def test_client_request_ids_get_a_suffix_towards_the_worker(stack):
    gw, (w,) = stack(good)
    for _ in range(2):
        assert _request(gw, CHAT, {"x-request-id": "trace-1"})[0] == 200
    ids = [next(line.split(b":", 1)[1].strip() for line in h.split(b"\r\n") if line.lower().startswith(b"x-request-id"))
           for h in w.heads]
    assert len(set(ids)) == 2 and all(i.startswith(b"trace-1-") for i in ids), ids


@pytest.fixture(scope="module")
def proxy_gw():
    s = _Stack()
    gw, _ = s(good, good)
    yield gw
    s.stop()


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(["/v1/chat/completions", "/v1/completions", "/generate", "/v1/embeddings",
                             "/v1/responses", "/v1/rerank"]),
       body=_bodies | _json | st.binary(max_size=64))
def test_random_bodies_never_get_a_gateway_5xx_in_proxy_mode(proxy_gw, path, body):
    data = body if isinstance(body, bytes) else orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    host, port = proxy_gw.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("POST", path, data, {"content-type": "application/json"})
        resp = conn.getresponse()
        status, raw = resp.status, resp.read()
    finally:
        conn.close()
    assert status < 500, (status, raw)
