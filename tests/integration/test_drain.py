"""A gateway's graceful stop (smg.serve._drain, smg.http.h1cycle): while requests are in
flight the listener stays open and /readiness answers 503 draining; a stream that ends
within the grace period ends normally; one the grace period cuts ends with an error event
and ``data: [DONE]``, in proxy mode (a worker streaming without end) and in gRPC mode (a
reference worker generating far longer than the grace)."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import signal
import time
from collections.abc import Iterator
from types import SimpleNamespace

import orjson
import pytest

from smg.app import create_app
from smg.config import GatewayConfig
from smg.serve import ServerThread

from test_worker_faults import MODEL, RawWorker, _sse_head
from worker_threads import GrpcWorkerThread


async def endless_stream(head, reader, writer) -> None:
    writer.write(_sse_head())
    n = 0
    while True:  # until the gateway goes away
        writer.write(b'data: {"n": %d}\n\n' % n)
        await writer.drain()
        n += 1
        await asyncio.sleep(0.05)


def _connect(gw: ServerThread) -> http.client.HTTPConnection:
    host, port = gw.url.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=30)


def _open_stream(gw: ServerThread, path: str, body: dict) -> http.client.HTTPResponse:
    conn = _connect(gw)
    conn.request("POST", path, orjson.dumps(body), {"content-type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.readline().startswith(b"data: ")  # the stream is under way
    return resp


def _draining_readiness(gw: ServerThread) -> None:
    deadline = time.monotonic() + 10
    while True:
        conn = _connect(gw)
        try:
            conn.request("GET", "/readiness")
            resp = conn.getresponse()
            status, body = resp.status, resp.read()
        finally:
            conn.close()
        if status == 503 and json.loads(body) == {"status": "not ready", "reason": "draining"}:
            return
        assert time.monotonic() < deadline, (status, body)
        time.sleep(0.01)


def _events(rest: bytes) -> list[bytes]:
    return [e.strip().removeprefix(b"data: ") for e in rest.split(b"\n\n") if e.strip()]


def _assert_cut_with_error(rest: bytes) -> None:
    events = _events(rest)
    assert events[-1] == b"[DONE]", rest[-300:]
    error = json.loads(events[-2])["error"]
    assert error["code"] == 503 and error["type"] == "service_unavailable"


def test_proxy_stream_cut_by_the_grace_ends_with_an_error_event():
    worker = RawWorker(endless_stream)
    config = GatewayConfig.from_mapping({"worker_urls": [worker.url], "disable_health_check": True,
                                         "disable_load_monitoring": True})
    gw = ServerThread(create_app(config), grace_period=1.5)
    gw.start()
    try:
        resp = _open_stream(gw, "/v1/chat/completions",
                            {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True})
        gw.request_stop()
        _draining_readiness(gw)
        t0 = time.monotonic()
        rest = resp.read()  # until the grace period ends the stream
        assert time.monotonic() - t0 < 15
        _assert_cut_with_error(rest)
        assert all(b'"n"' in e for e in _events(rest)[:-2])  # the worker's events, whole
    finally:
        gw.stop()
        worker.stop()


@pytest.fixture(scope="module")
def grpc_worker():
    worker = GrpcWorkerThread(model=MODEL, tokenizer="deepseek", decode_us_per_token=2000)
    worker.start()
    yield worker
    worker.stop()


@contextlib.contextmanager
def _stream_then_stop(worker: GrpcWorkerThread, grace: float, max_tokens: int) -> Iterator[http.client.HTTPResponse]:
    """A gRPC-mode gateway streaming a completion of ``max_tokens``, asked to stop once the
    stream is under way and seen draining; the stream's response is yielded."""
    config = GatewayConfig.from_mapping({"worker_urls": [worker.url], "disable_load_monitoring": True})
    gw = ServerThread(create_app(config), grace_period=grace)
    gw.start()
    try:
        resp = _open_stream(gw, "/v1/completions", {"model": MODEL, "prompt": "hi", "max_tokens": max_tokens,
                                                    "ignore_eos": True, "stream": True})
        gw.request_stop()
        _draining_readiness(gw)  # answered while the stream goes on
        yield resp
    finally:
        gw.stop()


def test_grpc_stream_cut_by_the_grace_ends_with_an_error_event(grpc_worker):
    with _stream_then_stop(grpc_worker, 1.5, 100000) as resp:
        _assert_cut_with_error(resp.read())
    assert grpc_worker.wait_for(lambda e: e.loads()["num_running_reqs"] == 0)  # aborted on the worker


def test_a_stream_that_ends_within_the_grace_ends_normally(grpc_worker):
    with _stream_then_stop(grpc_worker, 30, 400) as resp:
        events = _events(resp.read())
    assert events[-1] == b"[DONE]" and b'"error"' not in b"".join(events)
    assert len(events) >= 300 and all("choices" in json.loads(e) for e in events[:-1])  # not cut short


def test_smg_serve_drains_on_sigterm():
    """The real process: SIGTERM starts the drain (uvicorn's handler would close the
    listener at once), /readiness says draining, the stream the grace cuts ends with an
    error event, and the process exits 0."""
    from test_cli_serve_process import Process

    from tests.conftest import free_port

    worker = Process("worker", "--transport", "http", "--host", "127.0.0.1", "--port", "0",
                     "--decode-us-per-token", "2000")
    try:
        url = worker.wait_for("smg worker ready: ").split()[3]
        port = free_port()
        gw_proc = Process("serve", "--worker-urls", url, "--port", str(port), "--shutdown-grace-period-secs", "1.5")
        try:
            gw_proc.wait_for(" ready on ")
            gw = SimpleNamespace(url=f"http://127.0.0.1:{port}")  # the helpers read its url only
            resp = _open_stream(gw, "/v1/completions", {"model": "smg-reference", "prompt": "hi",
                                                        "max_tokens": 100000, "ignore_eos": True, "stream": True})
            gw_proc.proc.send_signal(signal.SIGTERM)
            _draining_readiness(gw)
            _assert_cut_with_error(resp.read())
            assert gw_proc.proc.wait(30) == 0
        finally:
            gw_proc.stop()
    finally:
        worker.stop()
