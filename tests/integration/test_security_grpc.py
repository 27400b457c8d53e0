"""The control plane in gRPC mode: grpc:// workers added and removed at run time, the wrong
scheme refused with a 400, /flush_cache through the FlushCache RPC; reference workers on
loopback, the openai client for traffic."""

from __future__ import annotations

import openai
import pytest

from smg.app import create_app
from smg.config import GatewayConfig
from smg.serve import ServerThread
from tests.unit.security._authlib import ADMIN_KEY, CONTROL_KEYS, DATA_KEY, call
from worker_threads import GrpcWorkerThread

MODEL = "ref-model"
# long enough to fill whole KV blocks in the worker's prefix cache
MSG = [{"role": "user", "content": "Say something about caches. " * 60}]


@pytest.fixture
def workers():
    started = [GrpcWorkerThread(grpc_proto=proto, model=MODEL, tokenizer="deepseek")
               for proto in ("sglang", "sglang", "vllm")]
    yield started
    for w in started:
        if w.url:
            w.stop()


@pytest.fixture
def gateway(workers):
    config = GatewayConfig.from_mapping({"worker_urls": [workers[0].start()], "policy": "round_robin",
                                         "disable_load_monitoring": True, "control_plane_api_keys": CONTROL_KEYS,
                                         "api_key": DATA_KEY})
    server = ServerThread(create_app(config))
    yield server.start()
    server.stop()


def _chat(url: str, key: str = DATA_KEY) -> str:
    client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=30)
    return client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=4).choices[0].message.content


async def test_grpc_workers_are_added_and_removed_at_run_time(gateway, workers):
    first, second = workers[0], workers[1]
    second.start()
    status, body, _ = await call("POST", gateway + "/workers", {"url": "http://127.0.0.1:1"}, key=ADMIN_KEY)
    assert status == 400 and "grpc://" in body["error"]["message"]
    status, added, _ = await call("POST", gateway + "/workers", {"url": second.url}, key=ADMIN_KEY)
    assert status == 202 and added["worker"]["model_id"] == MODEL and added["worker"]["status"] == "ready"
    _, listing, _ = await call("GET", gateway + "/workers", key=ADMIN_KEY)
    assert sorted(w["url"] for w in listing["workers"]) == sorted([first.url, second.url])
    first_id = next(w["id"] for w in listing["workers"] if w["url"] == first.url)
    assert (await call("DELETE", f"{gateway}/workers/{first_id}", key=ADMIN_KEY))[0] == 202
    served = second.engine.cache.cached_tokens
    assert _chat(gateway)  # only the added worker is left to serve it
    assert second.engine.cache.cached_tokens > served
    assert (await call("DELETE", f"{gateway}/workers/{added['worker_id']}", key=ADMIN_KEY))[0] == 202
    with pytest.raises(openai.APIStatusError) as info:
        _chat(gateway)
    assert info.value.status_code in (404, 503)


async def test_flush_cache_uses_the_flush_cache_rpc(gateway, workers):
    first, vllm = workers[0], workers[2]
    with pytest.raises(openai.AuthenticationError):  # the gRPC-mode fast routes are behind the guard too
        _chat(gateway, key=ADMIN_KEY)
    assert _chat(gateway)
    assert first.engine.cache.cached_tokens > 0
    status, body, _ = await call("POST", gateway + "/flush_cache", {}, key=ADMIN_KEY)
    assert status == 200 and [w["status"] for w in body["workers"]] == [200]
    assert first.engine.cache.cached_tokens == 0
    # a vLLM worker has no FlushCache: reported, not hidden
    vllm.start()
    assert (await call("POST", gateway + "/workers", {"url": vllm.url}, key=ADMIN_KEY))[0] == 202
    status, body, _ = await call("POST", gateway + "/flush_cache", {}, key=ADMIN_KEY)
    assert status == 502 and sorted(w["status"] for w in body["workers"]) == [200, 501]
