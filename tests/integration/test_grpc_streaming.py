"""Streamed chat in gRPC mode through `smg serve`: clients that leave mid-stream abort
the request on the worker without counting as worker failures (the circuit breaker stays
closed), a stop string still ends the stream and the worker's request, and a
prefill/decode pair streams through the same path (its stream read as an ItemStream)."""

from __future__ import annotations

import http.client
import json
import urllib.parse

import pytest

from smg.app import create_app
from smg.config import BreakerSettings, GatewayConfig, RoutingConfig
from smg.serve import ServerThread

from worker_threads import GrpcWorkerThread

MODEL = "ref-model"


@pytest.fixture(scope="module")
def gw():
    worker = GrpcWorkerThread(model=MODEL, tokenizer="deepseek", decode_us_per_token=1000)
    config = GatewayConfig(
        routing=RoutingConfig(worker_urls=(worker.start(),), policy="round_robin", disable_load_monitoring=True),
        breaker=BreakerSettings(failure_threshold=2),
    )
    server = ServerThread(create_app(config))
    url = server.start()
    yield url, worker
    server.stop()
    worker.stop()


def _open_stream(url: str, rid: str, **extra) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "max_tokens": 100000, "ignore_eos": True, "rid": rid, **extra}
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"content-type": "application/json"})
    return conn, conn.getresponse()


def _first_content(resp: http.client.HTTPResponse) -> None:
    while True:
        line = resp.readline()
        assert line, "the stream ended before any content"
        if line.startswith(b"data: {") and b'"content":"' in line and b'"content":""' not in line:
            return


def test_clients_leaving_mid_stream_do_not_open_the_breaker(gw) -> None:
    url, worker = gw
    for k in range(4):  # twice the failure threshold
        conn, resp = _open_stream(url, f"leave-{k}")
        assert resp.status == 200
        _first_content(resp)
        conn.sock.close()
        conn.close()
        assert worker.wait_for(lambda e, k=k: f"leave-{k}" in e.aborted_rids or f"leave-{k}" in e.cancelled_rids,
                               timeout=10)
    conn, resp = _open_stream(url, "after", max_tokens=3)
    assert resp.status == 200  # the worker is still in rotation
    events = [ln for ln in resp.read().split(b"\n\n") if ln]
    assert events[-1] == b"data: [DONE]"
    assert json.loads(events[-2][6:])["choices"][0]["finish_reason"] == "length"
    conn.close()


def test_a_stop_string_ends_the_stream_and_the_workers_request(gw) -> None:
    url, worker = gw
    conn, resp = _open_stream(url, "stop-1", stop=["brown"])
    text, finish = "", None
    for event in resp.read().split(b"\n\n"):
        if event.startswith(b"data: {"):
            for c in json.loads(event[6:])["choices"]:
                text += c["delta"].get("content") or ""
                finish = c["finish_reason"] or finish
    conn.close()
    assert text == "The quick " and finish == "stop"
    assert worker.wait_for(lambda e: "stop-1" in e.aborted_rids or "stop-1" in e.cancelled_rids, timeout=10)


def test_streamed_sglang_generate(gw) -> None:
    url, _ = gw
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    body = {"text": "hi", "stream": True, "sampling_params": {"max_new_tokens": 6, "ignore_eos": True}}
    conn.request("POST", "/generate", json.dumps(body), {"content-type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    events = [e for e in resp.read().split(b"\n\n") if e]
    conn.close()
    assert events[-1] == b"data: [DONE]"
    outs = [json.loads(e[6:]) for e in events[:-1]]
    texts = [o["text"] for o in outs]
    assert all(b.startswith(a) for a, b in zip(texts, texts[1:]))  # cumulative, as SGLang sends it
    assert texts[-1] == "The quick brown fox jumps over"
    assert outs[-1]["meta_info"]["finish_reason"]["type"] == "length"


@pytest.mark.parametrize("proto", ["sglang", "vllm"])
def test_streamed_and_whole_chat_through_a_grpc_pd_pair(proto) -> None:
    from _pd_gateway import pd_gateway
    from _pd_lib import PDWorker

    kw = dict(transport="grpc", grpc_proto=proto, pd_style=proto)
    prefill, decode = PDWorker(role="prefill", **kw), PDWorker(role="decode", **kw)
    prefill.start()
    decode.start()
    gw = pd_gateway([(prefill.url, prefill.bootstrap_port)], [decode.url], style=proto)
    try:
        model = gw.client.models.list().data[0].id
        messages = [{"role": "user", "content": "hi"}]
        whole = gw.client.chat.completions.create(model=model, messages=messages, max_tokens=7)
        chunks = list(gw.client.chat.completions.create(model=model, messages=messages, max_tokens=7, stream=True,
                                                        stream_options={"include_usage": True}))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == whole.choices[0].message.content and text.startswith("The quick")
        assert chunks[-1].usage.completion_tokens == 7
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    finally:
        gw.server.stop()
        prefill.stop()
        decode.stop()
