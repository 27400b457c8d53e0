"""The proxy path against stub workers: routing, retries, streaming, disconnects, errors."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest

CHAT = {"model": "stub-model", "messages": [{"role": "user", "content": "hello"}]}



async def post(url: str, path: str, payload: dict | bytes, **kw) -> tuple[int, dict, dict]:
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    async with aiohttp.ClientSession() as s, s.post(url + path, data=data, **kw) as r:
        return r.status, {k.lower(): v for k, v in r.headers.items()}, orjson.loads(await r.read())


async def test_body_and_path_reach_the_worker_unchanged(make_stub, make_gateway):
    a = make_stub("a")
    url = make_gateway(worker_urls=[a.url])
    raw = b'{"model": "stub-model",   "prompt": "x", "extra": [1, 2.50, null]}'
    status, headers, body = await post(url, "/v1/completions", raw, headers={"x-custom": "yes"})
    assert status == 200 and body["worker"] == "a" and body["path"] == "/v1/completions"
    assert body["echo"] == orjson.loads(raw)
    assert a.headers[-1]["x-custom"] == "yes"
    # the request id reaches the worker and comes back to the client
    assert a.headers[-1]["x-request-id"] == headers["x-request-id"]
    assert headers["x-request-id"].startswith("cmpl-")


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/generate", "/v1/embeddings"])
async def test_every_proxy_route_forwards_to_the_same_path(make_stub, make_gateway, path):
    a = make_stub("a")
    url = make_gateway(worker_urls=[a.url])
    payload = {"messages": CHAT["messages"], "prompt": "p", "text": "t", "input": "i"}
    status, _, body = await post(url, path, payload)
    assert status == 200 and a.paths == [path] and body["path"] == path


async def test_round_robin_alternates(make_stub, make_gateway):
    a, b = make_stub("a"), make_stub("b")
    url = make_gateway(worker_urls=[a.url, b.url], policy="round_robin")
    served = [(await post(url, "/v1/chat/completions", CHAT))[2]["worker"] for _ in range(6)]
    assert sorted(served) == ["a"] * 3 + ["b"] * 3
    assert all(served[i] != served[i + 1] for i in range(5))


async def test_retryable_status_goes_to_another_worker(make_stub, make_gateway):
    a, b = make_stub("a"), make_stub("b")
    a.status = 503
    url = make_gateway(worker_urls=[a.url, b.url], policy="round_robin")
    for _ in range(4):
        status, _, body = await post(url, "/v1/chat/completions", CHAT)
        assert status == 200 and body["worker"] == "b"
    assert len(a.requests) >= 1 and len(b.requests) == 4


async def test_when_every_worker_fails_the_client_gets_the_workers_answer(make_stub, make_gateway):
    a, b = make_stub("a"), make_stub("b")
    url = make_gateway(worker_urls=[a.url, b.url], policy="round_robin", retry_max_retries=2)
    status, _, body = await post(url, "/v1/chat/completions", {**CHAT, "stub": {"status": 503}})
    assert status == 503 and body["error"]["type"] == "stub_error"
    assert len(a.requests) == 1 and len(b.requests) == 1  # one attempt on each


async def test_dead_worker_is_retried_elsewhere(make_stub, make_gateway, unused_port):
    a = make_stub("a")
    dead = f"http://127.0.0.1:{unused_port}"
    url = make_gateway(worker_urls=[dead, a.url], policy="round_robin", disable_health_check=True)
    for _ in range(4):
        status, _, body = await post(url, "/v1/chat/completions", CHAT)
        assert status == 200 and body["worker"] == "a"


async def test_worker_client_error_passes_through_without_retry(make_stub, make_gateway):
    a, b = make_stub("a"), make_stub("b")
    url = make_gateway(worker_urls=[a.url, b.url], policy="round_robin")
    status, _, body = await post(url, "/v1/chat/completions", {**CHAT, "stub": {"status": 422}})
    assert status == 422 and body["error"]["message"].endswith("says 422")
    assert len(a.requests) + len(b.requests) == 1


async def test_sse_streams_through_byte_for_byte_as_it_arrives(make_stub, make_gateway):
    a = make_stub("a")
    url = make_gateway(worker_urls=[a.url])
    payload = {**CHAT, "stream": True, "stub": {"stream": 3, "gate": "g1"}}
    received = b""
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions", json=payload) as r:
        assert r.status == 200 and r.headers["content-type"].startswith("text/event-stream")
        # the first event arrives while the worker still holds the rest back
        first = await asyncio.wait_for(r.content.readuntil(b"\n\n"), 10)
        assert first == a.events(3)[0]
        a.gates.setdefault("g1", __import__("threading").Event()).set()
        received = first + await r.content.read()
    assert received == b"".join(a.events(3))


async def test_client_disconnect_aborts_the_upstream_stream(make_stub, make_gateway):
    a = make_stub("a")
    url = make_gateway(worker_urls=[a.url])
    payload = {**CHAT, "stream": True, "stub": {"stream": 10_000, "pace": 0.01}}
    async with aiohttp.ClientSession() as s:
        r = await s.post(url + "/v1/chat/completions", json=payload)
        await asyncio.wait_for(r.content.readuntil(b"\n\n"), 10)
        r.close()  # drop the connection mid-stream
    assert await asyncio.to_thread(a.closed.wait, 10)
    # and the gateway's in-flight count for the worker returns to zero
    async with aiohttp.ClientSession() as s:
        for _ in range(200):
            async with s.get(url + "/workers") as resp:
                if (await resp.json())["workers"][0]["load"] == 0:
                    break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("worker load never returned to 0")
