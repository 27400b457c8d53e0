"""Streamed chat in gRPC mode with a paced worker (one token per read), under smg's own
HTTP/1.1 server: after the first bytes each read is stepped and written inside the worker
connection's read (StreamRun pushed), and the client still gets the whole text, usage
and [DONE]; a stop string and a client that leaves still abort the worker's request, a
step that fails ends the request with an error event. Under hypercorn (no ``smg.write``)
nothing is pushed and the stream is the same."""

from __future__ import annotations

import http.client
import json
import urllib.parse

import pytest
from test_grpc_mode import MODEL, _expected

from smg.app import create_app
from smg.config import GatewayConfig, RoutingConfig
from smg.pipeline.stream import StreamRun
from smg.serve import ServerThread
from worker_threads import GrpcWorkerThread, tokenizer


@pytest.fixture(scope="module")
def worker():
    w = GrpcWorkerThread(grpc_proto="sglang", model=MODEL, tokenizer="deepseek", decode_us_per_token=1000)
    url = w.start()
    yield w, url
    w.stop()


def _serve(url: str, server: str):
    config = GatewayConfig(routing=RoutingConfig(worker_urls=(url,), policy="round_robin",
                                                 disable_load_monitoring=True))
    srv = ServerThread(create_app(config), server=server)
    return srv, srv.start()


@pytest.fixture(scope="module", params=["uvicorn", "hypercorn"])
def gw(request, worker):
    w, url = worker
    srv, base = _serve(url, request.param)
    yield request.param, base, w
    srv.stop()


@pytest.fixture()
def pushes(monkeypatch):
    """How many reads went out from inside the worker connection's read."""
    count = [0]
    real = StreamRun._on_read

    def counted(self) -> bool:
        took = real(self)
        count[0] += took
        return took

    monkeypatch.setattr(StreamRun, "_on_read", counted)
    return count


def _stream(base: str, body: dict, *, until_content: bool = False):
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request("POST", "/v1/chat/completions", json.dumps({"model": MODEL, "stream": True, **body}),
                 {"content-type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    if until_content:
        return conn, resp
    events = []
    for line in resp.read().split(b"\n"):
        if line.startswith(b"data: "):
            events.append("[DONE]" if line == b"data: [DONE]" else json.loads(line[6:]))
    conn.close()
    return events


def _text(events: list) -> str:
    return "".join(c["delta"].get("content") or "" for e in events if isinstance(e, dict) and "choices" in e
                   for c in e["choices"])


def test_a_paced_stream_is_pushed_and_whole(gw, pushes) -> None:
    server, base, w = gw
    events = _stream(base, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 24,
                            "ignore_eos": True, "stream_options": {"include_usage": True}})
    g = type("G", (), {"tok": tokenizer("deepseek"), "workers": [w]})
    assert _text(events) == _expected(g, 24)
    assert events[-1] == "[DONE]" and events[-2]["usage"]["completion_tokens"] == 24
    assert [c["finish_reason"] for e in events[:-2] for c in e["choices"]].count("length") == 1
    if server == "uvicorn":
        assert pushes[0] >= 12  # most of the 24 one-token reads
    else:
        assert pushes[0] == 0


def test_a_stop_string_on_the_pushed_path_aborts_the_worker(gw, pushes) -> None:
    server, base, w = gw
    g = type("G", (), {"tok": tokenizer("deepseek"), "workers": [w]})
    text = _expected(g, 40)
    stop = text[25:29]
    rid = f"push-stop-{server}"
    events = _stream(base, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 100000,
                            "ignore_eos": True, "stop": [stop], "rid": rid})
    assert _text(events) == text[: text.index(stop)]
    assert events[-1] == "[DONE]"
    assert w.wait_for(lambda e: rid in e.aborted_rids or rid in e.cancelled_rids, timeout=15)


def test_a_client_that_leaves_a_pushed_stream_aborts_the_worker(gw, pushes) -> None:
    server, base, w = gw
    rid = f"push-leave-{server}"
    conn, resp = _stream(base, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 100000,
                                "ignore_eos": True, "rid": rid}, until_content=True)
    contents = 0
    while contents < 5:
        line = resp.readline()
        contents += line.startswith(b"data: {") and b'"content"' in line
    conn.sock.close()
    conn.close()
    assert w.wait_for(lambda e: rid in e.aborted_rids or rid in e.cancelled_rids, timeout=10)


def test_a_step_that_fails_in_the_read_is_an_error_event(gw, monkeypatch) -> None:
    server, base, w = gw
    if server != "uvicorn":
        pytest.skip("nothing is pushed under hypercorn")
    real = StreamRun._on_read
    calls = [0]

    def failing_step(self) -> bool:
        calls[0] += 1
        if calls[0] == 3:
            def boom(*args):
                raise RuntimeError("a bug in a step")
            self._take = self._run = boom  # this step, inside the read, fails
        return real(self)

    monkeypatch.setattr(StreamRun, "_on_read", failing_step)
    rid = "push-bug"
    events = _stream(base, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 100000,
                            "ignore_eos": True, "rid": rid})
    assert events[-1] == "[DONE]" and events[-2]["error"]["type"] == "internal_error"
    assert w.wait_for(lambda e: rid in e.aborted_rids or rid in e.cancelled_rids, timeout=10)
    monkeypatch.setattr(StreamRun, "_on_read", real)
    assert _stream(base, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3})[-1] == "[DONE]"
