"""Client errors stay client errors in gRPC mode: a body the gateway cannot put into a
worker request is a 400 naming the field, a worker's refusal (INVALID_ARGUMENT) is a 4xx,
and neither ever counts against a worker's circuit breaker; random bodies never get a
5xx from the gateway itself (hypothesis). Real gateway and reference workers on loopback."""

from __future__ import annotations

import http.client
import json
import socket
import time
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from smg.app import create_app
from smg.config import BreakerSettings, GatewayConfig, RoutingConfig
from smg.serve import ServerThread

from worker_threads import GrpcWorkerThread

MODEL = "ref-model"


@pytest.fixture(scope="module", params=["sglang", "vllm"])
def gw(request):
    workers = [GrpcWorkerThread(grpc_proto=request.param, model=MODEL, tokenizer="deepseek", context_length=256)
               for _ in range(2)]
    urls = tuple(w.start() for w in workers)
    config = GatewayConfig(
        routing=RoutingConfig(worker_urls=urls, policy="round_robin", disable_load_monitoring=True),
        breaker=BreakerSettings(failure_threshold=2),
    )
    server = ServerThread(create_app(config))
    url = server.start()
    host, port = url.removeprefix("http://").split(":")
    g = SimpleNamespace(url=url, host=host, port=int(port), server=server, workers=workers)
    yield g
    server.stop()
    for w in workers:
        w.stop()


def _post(g, path: str, body) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn = http.client.HTTPConnection(g.host, g.port, timeout=30)
    try:
        conn.request("POST", path, data, {"content-type": "application/json"})
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    return resp.status, json.loads(raw) if raw else {}


def _breakers(g) -> list[dict]:
    state = g.server.app.state.smg
    return [w.breaker.to_dict() for w in state.registry.all()]


def _completion(**kw) -> dict:
    return {"model": MODEL, "prompt": "hello", "max_tokens": 2, **kw}


def _chat(**kw) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, **kw}


BAD = [
    ("/v1/completions", _completion(max_tokens=4294967296), "max_tokens"),
    ("/v1/completions", _completion(min_tokens=-1), "min_tokens"),
    ("/v1/completions", _completion(min_tokens=5, max_tokens=2), "min_tokens"),
    ("/v1/completions", _completion(top_k=2**31), "top_k"),
    ("/v1/completions", _completion(top_k=-2), "top_k"),
    ("/v1/completions", _completion(stop_token_ids=[2**32]), "stop_token_ids"),
    ("/v1/completions", _completion(seed=2**64), "seed"),
    ("/v1/completions", _completion(top_p=1.5), "top_p"),
    ("/v1/completions", _completion(repetition_penalty=-1), "repetition_penalty"),
    ("/v1/completions", _completion(frequency_penalty=1e30), "frequency_penalty"),
    ("/v1/completions", _completion(logprobs=10**6), "logprobs"),
    ("/v1/completions", _completion(prompt=[1, 2, 2**32]), "prompt"),
    ("/v1/completions", _completion(prompt=[1, 2, 10**9]), "prompt"),
    ("/v1/completions", _completion(model=["a"]), "model"),
    ("/v1/completions", _completion(model={"a": 1}), "model"),
    ("/v1/chat/completions", _chat(messages=[{"role": 1, "content": "x"}]), "messages"),
    ("/v1/chat/completions", _chat(messages=[{"role": "user", "content": [{"type": "text", "text": 5}]}]),
     "messages"),
    ("/v1/chat/completions", _chat(messages=[{"role": "user", "content": "x", "tool_calls": "no"}]), "messages"),
    ("/v1/chat/completions", _chat(response_format={"type": "json_schema", "json_schema": {"schema": "x"}}),
     "response_format"),
    ("/v1/chat/completions", _chat(response_format={"type": "json_schema", "json_schema": [1]}),
     "response_format"),
    ("/v1/chat/completions", _chat(response_format={"type": 3}), "response_format"),
    ("/v1/chat/completions", _chat(tool_choice=7), "tool_choice"),
    ("/v1/chat/completions", _chat(tools=[{"type": "function", "function": {"name": "f", "parameters": 1}}]),
     "tools"),
    ("/v1/chat/completions", _chat(top_logprobs=2**31), "top_logprobs"),
    ("/v1/chat/completions", _chat(model=5), "model"),
    ("/generate", {"text": "hi", "sampling_params": {"max_new_tokens": 2**40}}, "max_tokens"),
    ("/generate", {"input_ids": [1, -3], "sampling_params": {}}, "prompt"),
    ("/v1/tokenize", {"model": [1], "prompt": "x"}, "model"),
    ("/v1/tokenize", {"messages": [{"role": 2}]}, "messages"),
    ("/v1/tokenize", {"messages": "hello"}, "messages"),
    ("/v1/tokenize", {"prompt": "x", "add_special_tokens": "yes"}, "add_special_tokens"),
    ("/v1/detokenize", {"tokens": [1, 2**40]}, "tokens"),
    ("/v1/detokenize", {"tokens": [10**9]}, "tokens"),
    ("/v1/detokenize", {"tokens": [1], "model": 3.5}, "model"),
]


@pytest.mark.parametrize(("path", "body", "param"), BAD, ids=[f"{p}-{f}-{i}" for i, (p, _, f) in enumerate(BAD)])
def test_out_of_range_fields_are_a_400_naming_the_field(gw, path, body, param):
    status, data = _post(gw, path, body)
    assert status == 400, data
    assert data["error"]["param"] == param
    assert data["error"]["type"] == "invalid_request_error"


def test_bad_bodies_never_open_a_breaker(gw):
    before = _breakers(gw)
    for _ in range(10):  # 5x the failure threshold, every worker
        for path, body, _param in BAD[:6]:
            assert _post(gw, path, body)[0] == 400
    assert _breakers(gw) == before
    status, data = _post(gw, "/v1/completions", _completion())
    assert status == 200, data


def test_worker_refusal_is_a_400_and_no_breaker_failure(gw):
    """An over-long prompt: the worker answers INVALID_ARGUMENT; the client gets a 400 with
    the worker's reason, each time, and the workers keep taking traffic."""
    long_prompt = "hello " * 400  # over the workers' 256-token context
    for _ in range(6):  # 3x the failure threshold on each of the two workers
        status, data = _post(gw, "/v1/completions", _completion(prompt=long_prompt))
        assert status == 400, data
        assert "context" in data["error"]["message"] or "long" in data["error"]["message"]
    assert all(b["state"] == "closed" and b["consecutive_failures"] == 0 for b in _breakers(gw))
    assert _post(gw, "/v1/completions", _completion())[0] == 200


def test_a_failing_request_counts_once_per_worker(gw):
    """A request that fails on every worker is tried on each once (not re-offered), so it
    costs each breaker one failure, not one per attempt."""
    for w in gw.server.app.state.smg.registry.all():
        w.breaker.reset()
    conn = http.client.HTTPConnection(gw.host, gw.port, timeout=30)
    body = json.dumps(_completion()).encode()
    # an injected worker error before the first token, on every worker (gRPC metadata)
    state = gw.server.app.state.smg
    processed = {w.id: w.processed for w in state.registry.all()}
    for w in gw.workers:
        w.engine.config = _with_fault(w.engine.config, "error_before_first")
    try:
        conn.request("POST", "/v1/completions", body, {"content-type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 502
    finally:
        for w in gw.workers:
            w.engine.config = _with_fault(w.engine.config, None)
        conn.close()
    assert sorted(w.processed - processed[w.id] for w in state.registry.all()) == [1, 1]
    assert sorted(b["consecutive_failures"] for b in _breakers(gw)) == [1, 1]
    for w in state.registry.all():
        w.breaker.reset()


def _with_fault(config, fault):
    import dataclasses

    return dataclasses.replace(config, fault=fault)


def test_client_leaving_mid_body_is_not_an_error(gw, caplog):
    with socket.create_connection((gw.host, gw.port)) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{\"prompt\": \"hel")
        time.sleep(0.05)  # let the gateway start reading the body (not a timing assertion)
    status, _ = _post(gw, "/v1/completions", _completion())  # the gateway still serves
    assert status == 200
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_FIELDS = ["model", "prompt", "messages", "max_tokens", "min_tokens", "top_k", "top_p", "temperature", "n",
           "stop", "stop_token_ids", "seed", "logprobs", "top_logprobs", "tools", "tool_choice",
           "response_format", "stream", "stream_options", "echo", "chat_template_kwargs", "tokens", "text",
           "input_ids", "sampling_params", "add_special_tokens", "skip_special_tokens", "rid",
           "continue_final_message", "separate_reasoning", "min_p", "ignore_eos"]
_messages = st.lists(st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "tool"]) | _json},
    optional={"content": st.text(max_size=20) | _json, "tool_calls": _json, "name": _json},
), min_size=1, max_size=3)
_bodies = st.fixed_dictionaries({}, optional={
    **{f: _json for f in _FIELDS},
    "model": st.just(MODEL) | _json, "prompt": st.text(max_size=30) | _json, "messages": _messages | _json,
    "max_tokens": st.integers(0, 8) | _json,
})


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(["/v1/completions", "/v1/chat/completions", "/generate", "/v1/tokenize",
                             "/v1/detokenize"]), body=_bodies | _json)
def test_random_bodies_never_get_a_gateway_5xx(gw, path, body):
    status, data = _post(gw, path, body)
    assert status < 500, (status, data)
