"""Every error is an OpenAI-style JSON body with the right status."""

from __future__ import annotations

import aiohttp
import orjson
import pytest

CHAT = {"model": "stub-model", "messages": [{"role": "user", "content": "hello"}]}



async def call(url: str, path: str, data: bytes | None = None, method: str = "POST", **kw):
    async with aiohttp.ClientSession() as s, s.request(method, url + path, data=data, **kw) as r:
        return r.status, orjson.loads(await r.read())


def assert_openai_error(body: dict, status: int, error_type: str | None = None) -> None:
    err = body["error"]
    assert err["code"] == status and isinstance(err["message"], str) and err["message"]
    if error_type is not None:
        assert err["type"] == error_type


@pytest.fixture(scope="module")
def gateway(module_servers):
    stub = module_servers.stub("a", model="m1")
    return module_servers.gateway(worker_urls=[stub.url], max_payload_size=2048)


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/chat/completions", b"{not json", None),
        ("/v1/chat/completions", b"[1, 2]", None),
        ("/v1/chat/completions", b'{"messages": "hi"}', "messages"),
        ("/v1/chat/completions", b'{"messages": [{"content": "x"}], "stream": "yes"}', "stream"),
        ("/v1/chat/completions", b'{"messages": [{"content": "x"}], "model": 7}', "model"),
        ("/v1/chat/completions", b'{"messages": [{"content": 5}]}', "messages.content"),
        ("/v1/completions", b'{"model": "m1"}', "prompt"),
        ("/v1/completions", b'{"prompt": {"a": 1}}', "prompt"),
        ("/generate", b'{"sampling_params": {}}', "text"),
        ("/v1/embeddings", b'{"input": []}', "input"),
    ],
)
async def test_bad_request_is_400(gateway, path, body, param):
    status, err = await call(gateway, path, body)
    assert status == 400
    assert_openai_error(err, 400, "invalid_request_error")
    assert err["error"]["param"] == param


async def test_unknown_model_is_404(gateway):
    status, err = await call(gateway, "/v1/chat/completions", orjson.dumps({**CHAT, "model": "nope"}))
    assert status == 404
    assert_openai_error(err, 404, "model_not_found")
    assert "nope" in err["error"]["message"]


async def test_known_model_is_served(gateway):
    status, body = await call(gateway, "/v1/chat/completions", orjson.dumps({**CHAT, "model": "m1"}))
    assert status == 200 and body["worker"] == "a"


async def test_body_too_large_is_413(gateway):
    big = orjson.dumps({**CHAT, "pad": "x" * 4096})
    status, err = await call(gateway, "/v1/chat/completions", big)
    assert status == 413
    assert_openai_error(err, 413)


async def test_chunked_body_too_large_is_413(gateway):
    async def chunks():
        yield b'{"messages": [{"content": "'
        for _ in range(8):
            yield b"x" * 512
        yield b'"}]}'

    status, err = await call(gateway, "/v1/chat/completions", chunks())
    assert status == 413
    assert_openai_error(err, 413)


async def test_no_worker_is_503(make_gateway):
    url = make_gateway(worker_urls=[])
    status, err = await call(url, "/v1/chat/completions", orjson.dumps(CHAT))
    assert status == 503
    assert_openai_error(err, 503, "service_unavailable")
    status, body = await call(url, "/readiness", method="GET")
    assert status == 503 and body["status"] == "not ready"


async def test_unreachable_worker_is_502(make_gateway, unused_port):
    url = make_gateway(worker_urls=[f"http://127.0.0.1:{unused_port}"], disable_health_check=True,
                       retry_max_retries=2)
    status, err = await call(url, "/v1/chat/completions", orjson.dumps(CHAT))
    assert status == 502
    assert_openai_error(err, 502, "upstream_error")


async def test_slow_worker_is_504(make_stub, make_gateway):
    stub = make_stub("slow")
    url = make_gateway(worker_urls=[stub.url], request_timeout_secs=0.2, retry_max_retries=1)
    status, err = await call(url, "/v1/chat/completions", orjson.dumps({**CHAT, "stub": {"delay": 1}}))
    assert status == 504
    assert_openai_error(err, 504, "timeout_error")


async def test_unknown_route_is_json_404(gateway):
    status, err = await call(gateway, "/v1/nothing", b"{}")
    assert status == 404
    assert_openai_error(err, 404)


async def test_unknown_worker_id_is_404(gateway):
    for method in ("GET", "DELETE"):
        status, err = await call(gateway, "/workers/ffff", method=method)
        assert status == 404
        assert_openai_error(err, 404, "not_found_error")
