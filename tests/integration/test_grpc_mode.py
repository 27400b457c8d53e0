"""`smg serve` in gRPC mode in front of reference workers speaking both protos, driven
by the official openai client: text, stops, n, usage, logprobs, aborts."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from types import SimpleNamespace

import openai
import pytest

from smg.app import create_app
from smg.config import GatewayConfig, ModelSettings, RoutingConfig
from smg.serve import ServerThread

from worker_threads import GrpcWorkerThread, tokenizer

MODEL = "ref-model"


def _gateway(workers: list[GrpcWorkerThread], **model_settings) -> SimpleNamespace:
    urls = tuple(w.start() for w in workers)
    config = GatewayConfig(
        routing=RoutingConfig(worker_urls=urls, policy="round_robin", disable_load_monitoring=True),
        model=ModelSettings(**model_settings),
    )
    server = ServerThread(create_app(config))
    url = server.start()
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=30)
    return SimpleNamespace(url=url, server=server, workers=workers, client=client)


@pytest.fixture(scope="module", params=["sglang", "vllm"])
def gw(request):
    workers = [GrpcWorkerThread(grpc_proto=request.param, model=MODEL, tokenizer="deepseek") for _ in range(2)]
    g = _gateway(workers)
    g.tok = tokenizer("deepseek")
    yield g
    g.server.stop()
    for w in workers:
        w.stop()


@pytest.fixture(scope="module", params=["sglang", "vllm"])
def slow_gw(request):
    """One worker at 1 ms per token: a generation is still running when the abort comes."""
    workers = [GrpcWorkerThread(grpc_proto=request.param, model=MODEL, tokenizer="deepseek", decode_us_per_token=1000)]
    g = _gateway(workers)
    yield g
    g.server.stop()
    for w in workers:
        w.stop()


def _cycle_ids(g) -> list[int]:
    return list(g.tok.encode(g.workers[0].config.cycle_text))


def _expected(g, n_tokens: int | None = None) -> str:
    ids = _cycle_ids(g)
    return g.tok.decode(ids[:n_tokens] if n_tokens is not None else ids)


def _post(url: str, body) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _chat(g, **kw):
    return g.client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hello!"}], **kw)


def test_chat_text_is_the_workers_tokens_decoded(gw) -> None:
    resp = _chat(gw)
    choice = resp.choices[0]
    assert choice.message.content == _expected(gw)
    assert choice.finish_reason == "stop"
    assert resp.usage.completion_tokens >= len(_cycle_ids(gw))
    assert resp.usage.prompt_tokens > 0


@pytest.mark.parametrize("n_tokens", [1, 7, 23, 40])
def test_max_tokens_cuts_byte_exact_even_inside_a_character(gw, n_tokens) -> None:
    resp = _chat(gw, max_tokens=n_tokens)
    assert resp.choices[0].message.content == _expected(gw, n_tokens)
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage.completion_tokens == n_tokens


def test_streaming_reassembles_to_the_same_text_with_usage(gw) -> None:
    stream = _chat(gw, stream=True, stream_options={"include_usage": True})
    text, reasons, usage, roles = [], [], None, 0
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            if c.delta.role == "assistant":
                roles += 1
            text.append(c.delta.content or "")
            if c.finish_reason:
                reasons.append(c.finish_reason)
    assert "".join(text) == _expected(gw)
    assert reasons == ["stop"] and roles == 1
    assert usage is not None and usage.completion_tokens >= len(_cycle_ids(gw))


def _reference_stop(text: str, stops: list[str]) -> tuple[str, str | None]:
    """Earliest-ending match wins, ties to the longest: the text before it."""
    best = None
    for s in stops:
        i = text.find(s)
        while i != -1:
            end = i + len(s)
            if best is None or end < best[0] or (end == best[0] and len(s) > len(best[1])):
                best = (end, s)
            i = text.find(s, i + 1)
            break
    if best is None:
        return text, None
    return text[: best[0] - len(best[1])], best[1]


STOP_CASES = [
    ["brown fox"],  # across token boundaries
    ["狐"],  # a CJK character inside a multi-byte token
    ["lazy", "quick"],  # several: the earliest wins
    ["fox jumps", "ox"],  # overlapping: the earliest-ending wins
    ["The"],  # at the first token
    ["🐕"],  # a 4-byte emoji
    ["not in the text"],
]


@pytest.mark.parametrize("stops", STOP_CASES, ids=[",".join(s) for s in STOP_CASES])
@pytest.mark.parametrize("stream", [False, True])
def test_stop_strings(gw, stops, stream) -> None:
    full = _expected(gw)
    want, matched = _reference_stop(full, stops)
    if stream:
        chunks = list(_chat(gw, stop=stops, stream=True))
        got = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        reasons = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert reasons == ["stop"]
    else:
        resp = _chat(gw, stop=stops)
        got = resp.choices[0].message.content
        assert resp.choices[0].finish_reason == "stop"
        if matched is not None:
            assert resp.choices[0].model_extra.get("matched_stop") == matched
    assert got == want


def test_stop_string_aborts_the_worker(slow_gw) -> None:
    resp = _chat(slow_gw, stop=["quick"], max_tokens=100000, extra_body={"ignore_eos": True, "rid": "stop-abort-1"})
    assert resp.choices[0].message.content == "The "
    engine = slow_gw.workers[0].engine
    assert slow_gw.workers[0].wait_for(
        lambda e: "stop-abort-1" in e.aborted_rids or "stop-abort-1" in e.cancelled_rids, timeout=15
    ), (list(engine.aborted_rids), list(engine.cancelled_rids), engine.loads())


def test_n_choices_are_multiplexed(gw) -> None:
    resp = _chat(gw, n=3, max_tokens=9)
    assert sorted(c.index for c in resp.choices) == [0, 1, 2]
    assert {c.message.content for c in resp.choices} == {_expected(gw, 9)}
    chunks = list(_chat(gw, n=2, max_tokens=5, stream=True))
    texts = {0: "", 1: ""}
    for c in chunks:
        for ch in c.choices:
            texts[ch.index] += ch.delta.content or ""
    assert texts == {0: _expected(gw, 5), 1: _expected(gw, 5)}


def test_completions_with_text_and_token_prompts(gw) -> None:
    resp = gw.client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=6)
    assert resp.choices[0].text == _expected(gw, 6)
    ids = gw.tok.encode("Once upon a time")
    resp = gw.client.completions.create(model=MODEL, prompt=ids, max_tokens=6, echo=True)
    assert resp.choices[0].text == "Once upon a time" + _expected(gw, 6)


def test_client_disconnect_aborts_on_the_worker(slow_gw) -> None:
    gw = slow_gw
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "max_tokens": 100000, "ignore_eos": True, "rid": "disconnect-1"}
    u = urllib.parse.urlsplit(gw.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"content-type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    while True:
        line = resp.readline()
        if line.startswith(b"data: {") and b"content" in line:
            break
    conn.sock.close()  # the client goes away mid-stream
    conn.close()
    # The worker stops: by our Abort rpc, or because the cancelled stream ended it first.
    assert gw.workers[0].wait_for(
        lambda e: "disconnect-1" in e.aborted_rids or "disconnect-1" in e.cancelled_rids, timeout=10
    )


def test_bad_requests_get_openai_errors(gw) -> None:
    status, body = _post(gw.url + "/v1/chat/completions", b"{not json")
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    status, body = _post(gw.url + "/v1/chat/completions", {"model": MODEL, "messages": "hi"})
    assert status == 400 and "messages" in body["error"]["message"]
    status, body = _post(gw.url + "/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "n": "2"})
    assert status == 400 and body["error"]["param"] == "n"
    status, body = _post(gw.url + "/v1/chat/completions", {"model": "nope", "messages": [{"role": "user", "content": "x"}]})
    assert status == 404 and body["error"]["type"] == "model_not_found"


def test_tokenize_and_detokenize(gw) -> None:
    _, r = _post(gw.url + "/v1/tokenize", {"model": MODEL, "prompt": "héllo 世界"})
    assert r["tokens"] == gw.tok.encode("héllo 世界")
    _, r2 = _post(gw.url + "/v1/detokenize", {"model": MODEL, "tokens": r["tokens"]})
    assert r2["prompt"] == "héllo 世界"


def test_sglang_generate_endpoint(gw) -> None:
    _, r = _post(gw.url + "/generate", {"text": "hi", "sampling_params": {"max_new_tokens": 5}})
    assert r["text"] == _expected(gw, 5)
    assert r["meta_info"]["completion_tokens"] == 5
    assert r["meta_info"]["finish_reason"]["type"] == "length"


def test_qwen_tiktoken_vocabulary() -> None:
    workers = [GrpcWorkerThread(grpc_proto="sglang", model=MODEL, tokenizer="qwen")]
    g = _gateway(workers)
    try:
        tok = tokenizer("qwen")
        ids = list(tok.encode(workers[0].config.cycle_text))
        for n in (3, 11, len(ids)):
            resp = _chat(g, max_tokens=n)
            assert resp.choices[0].message.content == tok.decode(ids[:n])
    finally:
        g.server.stop()
        for w in workers:
            w.stop()


def test_logprobs_come_back_in_openai_shape(gw) -> None:
    resp = _chat(gw, max_tokens=4, logprobs=True, top_logprobs=2)
    lp = resp.choices[0].logprobs
    if lp is None or not lp.content:
        pytest.skip("the reference worker does not report logprobs for this proto")
    assert len(lp.content) == 4
    assert "".join(t.token for t in lp.content) == _expected(gw, 4)
    assert all(isinstance(t.logprob, float) for t in lp.content)


def test_a_dead_worker_is_retried_elsewhere_and_leaves_rotation() -> None:
    from smg.config import HealthSettings

    workers = [GrpcWorkerThread(grpc_proto="sglang", model=MODEL, tokenizer="deepseek") for _ in range(2)]
    urls = tuple(w.start() for w in workers)
    config = GatewayConfig(
        routing=RoutingConfig(worker_urls=urls, policy="round_robin", disable_load_monitoring=True),
        health=HealthSettings(interval_secs=0.2, timeout_secs=1.0, failure_threshold=1, success_threshold=1),
    )
    server = ServerThread(create_app(config))
    client = openai.OpenAI(base_url=server.start() + "/v1", api_key="unused", max_retries=0, timeout=30)
    g = SimpleNamespace(client=client)
    try:
        workers[0].stop()  # dead before any request: every request must still succeed
        for _ in range(6):
            resp = _chat(g, max_tokens=3)
            assert resp.choices[0].finish_reason == "length"
    finally:
        server.stop()
        workers[1].stop()
