"""gRPC mode against workers that stall: the first-byte, inter-token and request timeouts
(504, or mid-stream an error event then ``[DONE]``), a timed-out worker ejected at once
and the request retried on another while nothing was sent, a non-streamed request aborted
on the worker when its client leaves, and a worker down at gateway start used within
seconds of coming up. Real gateway and reference workers (faults injected) on loopback."""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import socket
import time
from collections.abc import Iterator

import pytest

from smg.app import create_app
from smg.config import GatewayConfig
from smg.serve import ServerThread

from _grpc_worker_lib import WorkerProcess
from worker_threads import GrpcWorkerThread

MODEL = "ref-model"


@contextlib.contextmanager
def _gateway(urls, **settings) -> Iterator[ServerThread]:
    config = {"worker_urls": list(urls), "policy": "round_robin", "disable_load_monitoring": True,
              "retry_initial_backoff_ms": 1, **settings}
    gw = ServerThread(create_app(GatewayConfig.from_mapping(config)))
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


def _post(gw: ServerThread, body: dict, timeout: float = 30) -> tuple[int, bytes]:
    host, port = gw.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("POST", "/v1/completions", json.dumps(body).encode(), {"content-type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _fault(worker: GrpcWorkerThread, fault: str | None) -> None:
    worker.engine.config = dataclasses.replace(worker.engine.config, fault=fault)


def _breaker(gw: ServerThread, worker: GrpcWorkerThread) -> str:
    return next(w.breaker.state for w in gw.app.state.smg.registry.all() if w.url == worker.url)


@pytest.fixture(params=["sglang", "vllm"])
def pair(request):
    workers = [GrpcWorkerThread(grpc_proto=request.param, model=MODEL, tokenizer="deepseek",
                                decode_us_per_token=2000) for _ in range(2)]
    for w in workers:
        w.start()
    yield workers
    for w in workers:
        w.stop()


@pytest.mark.parametrize("client", ["lean", "aio"])
def test_stall_mid_stream_ends_with_an_error_event_and_ejects(pair, client):
    stalled, _ = pair
    with _gateway([stalled.url], inter_token_timeout_secs=0.3, grpc_client=client) as gw:
        _fault(stalled, "stall:3")
        status, body = _post(gw, {"model": MODEL, "prompt": "hi", "max_tokens": 50, "stream": True})
        assert status == 200
        events = [e.removeprefix(b"data: ") for e in body.split(b"\n\n") if e]
        assert events[-1] == b"[DONE]"
        error = json.loads(events[-2])["error"]
        assert error["code"] == 504
        assert all("choices" in json.loads(e) for e in events[:-2])
        assert _breaker(gw, stalled) == "open"
        assert stalled.wait_for(lambda e: e.loads()["num_running_reqs"] == 0)  # aborted there


@pytest.mark.parametrize("client", ["lean", "aio"])
def test_slow_first_token_is_retried_on_another_worker(pair, client):
    slow, fine = pair
    with _gateway([slow.url, fine.url], first_byte_timeout_secs=0.3, grpc_client=client) as gw:
        _fault(slow, "slow_first_token:5")
        for _ in range(3):  # round robin: the slow worker first in one of the first two
            status, body = _post(gw, {"model": MODEL, "prompt": "hi", "max_tokens": 3, "stream": True})
            assert status == 200 and body.endswith(b"data: [DONE]\n\n") and b'"error"' not in body, body
        assert _breaker(gw, slow) == "open"


def test_request_timeout_is_a_504_in_grpc_mode(pair):
    stalled, _ = pair
    with _gateway([stalled.url], request_timeout_secs=0.5) as gw:
        _fault(stalled, "stall:2")
        status, body = _post(gw, {"model": MODEL, "prompt": "hi", "max_tokens": 50, "stop": ["zzz"]})
        assert status == 504, body
        assert json.loads(body)["error"]["type"] == "timeout_error"


def test_client_leaving_a_whole_response_aborts_it_on_the_worker(pair):
    """A generation of ~65 s (the whole context at 2 ms a token) ends on the worker soon
    after its client left: the slot is free again long before the generation would be."""
    worker, _ = pair
    with _gateway([worker.url]) as gw:
        host, port = gw.url.removeprefix("http://").split(":")
        body = json.dumps({"model": MODEL, "prompt": "hi", "max_tokens": 100000, "ignore_eos": True}).encode()
        with socket.create_connection((host, int(port))) as s:
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            assert worker.wait_for(lambda e: e.loads()["num_running_reqs"] > 0)
        assert worker.wait_for(lambda e: e.loads()["num_running_reqs"] == 0, timeout=20)
        assert all(w.load == 0 for w in gw.app.state.smg.registry.all())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_worker_down_at_start_is_used_within_seconds_of_coming_up():
    """Health probes of a worker that is not ready run on the fast schedule (1 s doubling,
    at most 5 s), not once a minute: it takes traffic within seconds of coming up."""
    port = _free_port()
    proc = None
    with _gateway([f"grpc://127.0.0.1:{port}"], tokenizer_path="deepseek") as gw:
        try:
            assert _post(gw, {"model": MODEL, "prompt": "hi", "max_tokens": 2})[0] in (404, 503)
            proc = WorkerProcess("--transport", "grpc", "--model", MODEL, "--tokenizer", "deepseek",
                                 "--port", str(port))
            proc.wait_ready()
            up = time.monotonic()
            while _post(gw, {"model": MODEL, "prompt": "hi", "max_tokens": 2})[0] != 200:
                assert time.monotonic() - up < 15, "the worker that came up is still not used (was ~120 s)"
                time.sleep(0.1)
        finally:
            if proc is not None:
                proc.stop()
