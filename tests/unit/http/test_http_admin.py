"""Worker management, health, models, loads, metrics and request ids against stub workers."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest

CHAT = {"model": "stub-model", "messages": [{"role": "user", "content": "hello"}]}



async def call(method: str, url: str, payload: dict | None = None, **kw):
    data = None if payload is None else orjson.dumps(payload)
    async with aiohttp.ClientSession() as s, s.request(method, url, data=data, **kw) as r:
        raw = await r.read()
        try:
            return r.status, orjson.loads(raw), r.headers
        except orjson.JSONDecodeError:
            return r.status, raw.decode(), r.headers


async def test_workers_api_add_get_delete(make_stub, make_gateway):
    a, b = make_stub("a"), make_stub("b", model="other")
    gw = make_gateway(worker_urls=[a.url])
    status, listing, _ = await call("GET", gw + "/workers")
    assert status == 200 and [w["url"] for w in listing["workers"]] == [a.url]
    status, added, _ = await call("POST", gw + "/workers", {"url": b.url, "labels": {"zone": "z1"}})
    assert status == 202 and added["worker"]["model_id"] == "other"  # asked its /v1/models
    wid = added["worker_id"]
    status, one, _ = await call("GET", f"{gw}/workers/{wid}")
    assert status == 200 and one["labels"] == {"zone": "z1"} and one["status"] == "ready"
    status, filtered, _ = await call("GET", gw + "/workers?model=other")
    assert [w["url"] for w in filtered["workers"]] == [b.url]
    # the new model is now routable, and listed
    status, body, _ = await call("POST", gw + "/v1/chat/completions", {**CHAT, "model": "other"})
    assert status == 200 and body["worker"] == "b"
    status, models, _ = await call("GET", gw + "/v1/models")
    assert sorted(m["id"] for m in models["data"]) == ["other", "stub-model"]
    status, _, _ = await call("DELETE", f"{gw}/workers/{wid}")
    assert status == 202
    status, err, _ = await call("POST", gw + "/v1/chat/completions", {**CHAT, "model": "other"})
    assert status == 404 and err["error"]["type"] == "model_not_found"


@pytest.mark.parametrize(
    "spec",
    [{"url": "ftp://x"}, {"url": 3}, {}, {"url": "http://x", "worker_type": "boss"},
     {"url": "http://x", "labels": {"a": 1}}, {"url": "http://x", "bootstrap_port": "1"}],
)
async def test_bad_worker_spec_is_400(make_gateway, spec):
    gw = make_gateway(worker_urls=[])
    status, err, _ = await call("POST", gw + "/workers", spec)
    assert status == 400 and err["error"]["type"] == "invalid_request_error"


async def test_unreachable_worker_is_added_pending_then_health_checks_decide(make_stub, make_gateway, unused_port):
    a = make_stub("a")
    gw = make_gateway(worker_urls=[a.url], health_check_interval_secs=0.05, health_failure_threshold=1)
    status, added, _ = await call("POST", gw + "/workers", {"url": f"http://127.0.0.1:{unused_port}"})
    assert status == 202 and added["worker"]["status"] == "pending"
    for _ in range(6):
        status, body, _ = await call("POST", gw + "/v1/chat/completions", CHAT)
        assert status == 200 and body["worker"] == "a"


async def test_unhealthy_worker_leaves_and_returns(make_stub, make_gateway):
    a, b = make_stub("a"), make_stub("b")
    gw = make_gateway(worker_urls=[a.url, b.url], health_check_interval_secs=0.05,
                      health_failure_threshold=1, health_success_threshold=1)

    async def wait_status(url: str, want: str) -> None:
        for _ in range(400):
            _, listing, _ = await call("GET", gw + "/workers")
            if {w["url"]: w["status"] for w in listing["workers"]}[url] == want:
                return
            await asyncio.sleep(0.02)
        pytest.fail(f"{url} never became {want}")

    b.healthy = False
    await wait_status(b.url, "not_ready")
    served = {(await call("POST", gw + "/v1/chat/completions", CHAT))[1]["worker"] for _ in range(4)}
    assert served == {"a"}
    status, ready, _ = await call("GET", gw + "/readiness")
    assert status == 200 and ready["healthy_workers"] == 1
    b.healthy = True
    await wait_status(b.url, "ready")
    served = {(await call("POST", gw + "/v1/chat/completions", CHAT))[1]["worker"] for _ in range(4)}
    assert served == {"a", "b"}


async def test_loads_flush_health_and_metrics(make_stub, make_gateway):
    a = make_stub("a")
    gw = make_gateway(worker_urls=[a.url], disable_load_monitoring=False, load_monitor_interval=0.05)
    for _ in range(400):
        _, loads, _ = await call("GET", gw + "/get_loads")
        if loads["workers"][0]["report"] is not None:
            break
        await asyncio.sleep(0.02)
    assert loads["workers"][0]["report"]["running"] == 3
    assert loads["workers"][0]["report"]["token_usage"] == 0.5
    status, flushed, _ = await call("POST", gw + "/flush_cache")
    assert status == 200 and flushed["status"] == "ok" and a.flushed == 1
    for path in ("/health", "/liveness", "/readiness"):
        assert (await call("GET", gw + path))[0] == 200
    await call("POST", gw + "/v1/chat/completions", CHAT)
    await call("POST", gw + "/v1/chat/completions", {"messages": 1})
    status, text, headers = await call("GET", gw + "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert 'smg_http_responses_total{endpoint="/v1/chat/completions",status_code="200"} 1.0' in text
    assert 'smg_http_responses_total{endpoint="/v1/chat/completions",status_code="400"} 1.0' in text
    assert f'smg_worker_requests_total{{worker="{a.url}"}} 1.0' in text


async def test_request_id_is_kept_from_the_client(make_stub, make_gateway):
    a = make_stub("a")
    gw = make_gateway(worker_urls=[a.url])
    _, _, headers = await call("POST", gw + "/generate", {"text": "x"}, headers={"x-correlation-id": "abc-1"})
    assert headers["x-request-id"] == "abc-1"
    assert a.headers[-1]["x-correlation-id"] == "abc-1"
    _, _, headers = await call("POST", gw + "/generate", {"text": "x"})
    assert headers["x-request-id"].startswith("gnt-")
