"""Shared by the discovery integration tests: a real gateway (``create_app`` on a loopback
socket) discovering from the API server stand-in (tests/k8s_standin.py), whose pods point
at real ``smg worker --transport http`` processes (pod IP 127.0.0.1, the worker's port in
annotation ``smg.ai/worker-ports``)."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable

import orjson
from k8s_standin import ApiServerStandIn, pod

from smg.app import create_app
from smg.cli.serve import ReferenceWorker
from smg.config import GatewayConfig
from smg.serve import ServerThread

__all__ = ["RELIST", "get_json", "start_gateway", "stop_gateways", "wait_for", "worker_pod", "workers_by_url"]

RELIST = 3.0  # --discovery-check-interval-secs of these gateways


def worker_pod(name: str, worker: ReferenceWorker, *, ready: bool = True, labels: dict | None = None) -> dict:
    return pod(name, "127.0.0.1", labels={"app": "worker", **(labels or {})},
               annotations={"smg.ai/worker-ports": str(worker.port)}, ready=ready)


def start_gateway(standin: ApiServerStandIn, kubeconfig: str, **settings) -> ServerThread:
    base = {
        "service_discovery": True, "selector": ["app=worker"], "discovery_kubeconfig": kubeconfig,
        "service_discovery_namespace": "default", "discovery_check_interval_secs": RELIST,
        "discovery_watch_timeout_secs": 1.5, "disable_load_monitoring": True, "retry_initial_backoff_ms": 1,
    }
    thread = ServerThread(create_app(GatewayConfig.from_mapping({**base, **settings})))
    thread.start()
    return thread


def stop_gateways(threads: list[ServerThread]) -> None:
    for t in threads:
        t.request_stop()
    for t in threads:
        t.stop()


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return orjson.loads(r.read())


def workers_by_url(gateway: str) -> dict[str, dict]:
    return {w["url"]: w for w in get_json(gateway + "/workers")["workers"]}


def wait_for(predicate: Callable[[], bool], timeout: float, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(0.05)
