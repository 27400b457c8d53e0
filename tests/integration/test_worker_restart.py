"""A worker killed (-9) and started again on its port is used again within seconds with
the default settings: its breaker opened when requests failed on it, health probes then
run on the fast schedule, and once they have seen it down and answering again the
breaker goes half-open (smg.router.health, CircuitBreaker.recovered) instead of waiting
out the 60 s open timeout. Real `smg worker` processes, a real gateway, loopback."""

from __future__ import annotations

import http.client
import time

import orjson

from smg.app import create_app
from smg.config import GatewayConfig
from smg.serve import ServerThread

from test_cli_serve_process import Process
from tests.conftest import free_port


def _worker(port: int) -> Process:
    proc = Process("worker", "--transport", "http", "--host", "127.0.0.1", "--port", str(port))
    proc.wait_for("smg worker ready: ")
    return proc


def _complete(gw: ServerThread) -> int:
    host, port = gw.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("POST", "/v1/completions", orjson.dumps({"model": "smg-reference", "prompt": "hi",
                                                              "max_tokens": 2}), {"content-type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def test_a_restarted_worker_is_used_again_within_seconds():
    ports = [free_port(), free_port()]
    workers = [_worker(p) for p in ports]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    gw = ServerThread(create_app(GatewayConfig.from_mapping({"worker_urls": urls, "policy": "round_robin",
                                                             "disable_load_monitoring": True})))
    gw.start()
    try:
        victim = next(w for w in gw.app.state.smg.registry.all() if w.url == urls[0])
        workers[0].proc.kill()
        workers[0].proc.wait()
        deadline = time.monotonic() + 20
        while victim.breaker.state != "open":  # requests fail over to the other worker
            assert _complete(gw) == 200
            assert time.monotonic() < deadline
        workers[0] = _worker(ports[0])
        restarted = time.monotonic()
        before = victim.processed
        while victim.processed == before:
            assert _complete(gw) == 200
            assert time.monotonic() - restarted < 20, "the restarted worker got no traffic in 20 s"
            time.sleep(0.05)
    finally:
        gw.stop()
        for w in workers:
            w.stop()
