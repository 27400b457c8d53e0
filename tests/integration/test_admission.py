"""Admission control (smg.http.admission) on a real gateway in front of loopback workers:
``--max-concurrent-requests`` with its bounded queue (429 when full, 408 past
``--queue-timeout-secs``, both with Retry-After and an OpenAI-shaped body), the global and
per-tenant token buckets, load shedding (503) when every worker is saturated, the slot
given back when the body is sent or the client is gone, and probes/control plane never
queued. Requests are held open by a gated worker (proxy mode) or a stalled reference
worker (gRPC mode), so every state is reached by waiting on a condition, not on time."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest

from smg.app import create_app
from smg.config import GatewayConfig
from smg.serve import ServerThread

from test_worker_faults import GOOD, MODEL, RawWorker, _whole
from worker_threads import GrpcWorkerThread

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


class Gate:
    """A worker handler that holds every POST until :meth:`open` (``held`` counts them)."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.held = 0

    async def __call__(self, head, reader, writer) -> None:
        self.held += 1
        while not self.opened.is_set():
            await asyncio.sleep(0.005)
        writer.write(_whole(GOOD))

    def open(self) -> None:
        self.opened.set()


def _until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def _call(gw: ServerThread, method: str = "POST", path: str = "/v1/chat/completions", body: dict | None = CHAT,
          headers: dict | None = None) -> tuple[int, dict[str, str], bytes]:
    host, port = gw.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        data = orjson.dumps(body) if body is not None and method == "POST" else None
        conn.request(method, path, data, {"content-type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.fixture
def gated() -> Iterator:
    """``gated(**settings)`` -> (gateway, gate) over one gated proxy-mode worker."""
    started: list = []
    gates: list[Gate] = []

    def make(**settings):
        gate = Gate()
        worker = RawWorker(gate)
        config = {"policy": "round_robin", "disable_load_monitoring": True, "disable_health_check": True,
                  **settings, "worker_urls": [worker.url]}
        gw = ServerThread(create_app(GatewayConfig.from_mapping(config)))
        started.extend([worker, gw])
        gates.append(gate)
        gw.start()
        return gw, gate

    yield make
    for gate in gates:
        gate.open()
    for item in reversed(started):
        item.stop()


def _admission(gw: ServerThread):
    return gw.app.state.admission


def _refusal(status: int, headers: dict, body: bytes, code: int, kind: str) -> None:
    assert status == code, body
    assert int(headers["retry-after"]) >= 1
    error = json.loads(body)["error"]
    assert error["code"] == code and error["type"] == kind and error["message"]


def test_full_queue_is_429_and_a_wait_past_the_timeout_408(gated):
    gw, gate = gated(max_concurrent_requests=1, queue_size=1, queue_timeout_secs=0.5)
    adm = _admission(gw)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(_call, gw)
        _until(lambda: gate.held == 1)
        queued = pool.submit(_call, gw)
        _until(lambda: len(adm.waiters) == 1)
        _refusal(*_call(gw), 429, "rate_limit_error")  # the queue is full
        t0 = time.monotonic()
        _refusal(*queued.result(), 408, "timeout_error")
        assert time.monotonic() - t0 < 10  # generous: the timeout is 0.5 s
        assert gate.held == 1  # neither refusal reached the worker
        gate.open()
        assert first.result()[0] == 200
    assert _call(gw)[0] == 200  # the slot came back
    assert adm.active == 0 and not adm.waiters
    metrics = _call(gw, "GET", "/metrics")[2].decode()
    assert 'smg_http_rate_limit_total{result="allowed"} 2' in metrics
    assert 'smg_http_rate_limit_total{result="rejected"} 2' in metrics
    assert 'smg_admission_rejected_total{reason="queue_full"} 1' in metrics
    assert 'smg_admission_rejected_total{reason="queue_timeout"} 1' in metrics
    assert 'smg_admission_bound{bound="queue_size"} 1' in metrics


def test_a_waiter_gets_the_slot_when_the_body_is_sent(gated):
    gw, gate = gated(max_concurrent_requests=2, queue_size=10, queue_timeout_secs=60)
    adm = _admission(gw)
    with ThreadPoolExecutor(6) as pool:
        calls = [pool.submit(_call, gw) for _ in range(6)]
        _until(lambda: gate.held == 2 and len(adm.waiters) == 4)
        assert adm.active == 2  # never more at the worker than the limit
        gate.open()
        assert [c.result()[0] for c in calls] == [200] * 6
    assert gate.held == 6 and adm.active == 0 and not adm.waiters


@contextlib.contextmanager
def _one_held(gw: ServerThread, gate: Gate) -> Iterator[None]:
    """One request held at the worker for the block; it ends 200 once the gate opens."""
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(_call, gw)
        _until(lambda: gate.held == 1)
        yield
        gate.open()
        assert first.result()[0] == 200


def test_queue_size_zero_refuses_at_once(gated):
    gw, gate = gated(max_concurrent_requests=1, queue_size=0)
    with _one_held(gw, gate):
        _refusal(*_call(gw), 429, "rate_limit_error")


def test_probes_and_control_plane_never_queue(gated):
    gw, gate = gated(max_concurrent_requests=1, queue_size=0)
    with _one_held(gw, gate):
        for path in ("/health", "/liveness", "/readiness", "/metrics", "/v1/models", "/workers"):
            assert _call(gw, "GET", path)[0] == 200, path


def test_shedding_when_every_worker_is_saturated(gated):
    gw, gate = gated(shed_inflight_per_worker=1)
    with _one_held(gw, gate):
        _refusal(*_call(gw), 503, "service_unavailable")
    assert _call(gw)[0] == 200  # not saturated any more


def test_global_rate_limit(gated):
    gw, gate = gated(rate_limit_tokens_per_second=1)
    gate.open()
    t0 = time.monotonic()
    answers = [_call(gw) for _ in range(6)]
    elapsed = time.monotonic() - t0
    ok = [a for a in answers if a[0] == 200]
    refused = [a for a in answers if a[0] != 200]
    assert answers[0][0] == 200  # the burst of one
    assert len(ok) <= 1 + int(elapsed) + 1  # one a second, whatever the machine's speed
    assert refused, elapsed
    for status, headers, body in refused:
        _refusal(status, headers, body, 429, "rate_limit_error")


def test_tenant_rate_limit_is_per_tenant(gated):
    gw, gate = gated(tenant_api_key=["acme:k-acme", "beta:k-beta"], tenant_rate_limit_tokens_per_second=0.01)
    gate.open()
    acme = {"authorization": "Bearer k-acme"}
    assert _call(gw, headers=acme)[0] == 200
    _refusal(*_call(gw, headers=acme), 429, "rate_limit_error")
    assert _call(gw, headers={"authorization": "Bearer k-beta"})[0] == 200  # a bucket of its own
    metrics = _call(gw, "GET", "/metrics", headers=acme)[2].decode()
    assert "smg_admission_tenant_buckets 2" in metrics
    assert 'smg_admission_rejected_total{reason="tenant_rate"} 1' in metrics


def test_admission_off_by_default(gated):
    gw, gate = gated()
    assert _admission(gw) is None
    assert gw.app.admission is None


# --- gRPC mode: a reference worker that stops sending tokens holds the request -------------

@pytest.fixture
def grpc_worker() -> Iterator[GrpcWorkerThread]:
    worker = GrpcWorkerThread(model=MODEL, tokenizer="deepseek", fault="stall:2")
    worker.start()
    yield worker
    worker.stop()


def test_grpc_mode_client_gone_gives_the_slot_back(grpc_worker):
    config = {"worker_urls": [grpc_worker.url], "policy": "round_robin", "disable_load_monitoring": True,
              "max_concurrent_requests": 1, "queue_size": 0}
    gw = ServerThread(create_app(GatewayConfig.from_mapping(config)))
    gw.start()
    try:
        host, port = gw.url.removeprefix("http://").split(":")
        body = orjson.dumps({"model": MODEL, "prompt": "hi", "max_tokens": 50, "stream": True})
        short = {"model": MODEL, "prompt": "x", "max_tokens": 2}
        with socket.create_connection((host, int(port))) as s:
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            assert grpc_worker.wait_for(lambda e: e.loads()["num_running_reqs"] > 0)
            _refusal(*_call(gw, path="/v1/completions", body=short), 429, "rate_limit_error")
        # the client left a stalled stream: its slot comes back though the worker never answers
        _until(lambda: _admission(gw).active == 0)
        grpc_worker.engine.config = dataclasses.replace(grpc_worker.engine.config, fault=None)
        assert _call(gw, path="/v1/completions", body=short)[0] == 200
        assert grpc_worker.wait_for(lambda e: e.loads()["num_running_reqs"] == 0)  # aborted there too
    finally:
        gw.stop()


def test_every_bound_is_a_metric(gated):
    gw, gate = gated(policy="cache_aware", max_tree_total_size=5000, max_concurrent_requests=8)
    gate.open()
    assert _call(gw)[0] == 200
    metrics = _call(gw, "GET", "/metrics")[2].decode()
    for line in ('smg_bound{name="cache_aware_tree_units"} 5000', 'smg_bound{name="request_head_bytes"} 65536',
                 'smg_bound{name="cache_aware_sessions"} 65536',
                 'smg_bound{name="upstream_idle_connections_per_worker"}',
                 'smg_bound{name="cache_aware_tree_units_per_worker"} 67108864',
                 'smg_admission_bound{bound="max_concurrent_requests"} 8'):
        assert line in metrics, line
    used = next(line for line in metrics.splitlines()
                if line.startswith('smg_bound_used{name="cache_aware_tree_units"}'))
    assert int(used.split()[-1]) > 0  # the request's text is in the tree


def test_a_slow_body_holds_no_slot(gated):
    """The body is read before admission: a client trickling its body in does not keep a
    well-behaved one out (max one request, no queue)."""
    gw, gate = gated(max_concurrent_requests=1, queue_size=0)
    gate.open()
    host, port = gw.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as slow:
        slow.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{")
        for _ in range(3):
            slow.sendall(b" ")
            assert _call(gw)[0] == 200  # not 429: the slow one holds nothing
        assert _admission(gw).active == 0


def test_payload_too_large_while_buffering_is_a_413(gated):
    gw, gate = gated(max_concurrent_requests=1, max_payload_size=100)
    gate.open()
    host, port = gw.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:  # chunked: no length up front
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  + b"c8\r\n" + b"x" * 200 + b"\r\n0\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 413 ")
    assert gate.held == 0 and _admission(gw).active == 0
