"""``smg serve --service-discovery`` as users run it: the CLI process (one, then
``--workers 2``), its kubeconfig pointing at the API server stand-in
(tests/k8s_standin.py), pods pointing at a real reference worker."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

pytest.importorskip("kubernetes_asyncio")

from _discovery_gateway_lib import get_json, wait_for, worker_pod  # noqa: E402
from k8s_standin import kubeconfig, standin  # noqa: E402,F401 - fixtures

from smg.cli.serve import ReferenceWorker, spawn_reference_workers  # noqa: E402
from tests.conftest import free_port  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workers() -> Iterator[list[ReferenceWorker]]:
    ws = spawn_reference_workers(2, timeout=120)
    yield ws
    for w in ws:
        w.stop()


def serve(kubeconfig: str, *extra: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "smg", "serve", "--port", str(port), "--service-discovery",
           "--selector", "app=worker", "--service-discovery-namespace", "default",
           "--discovery-kubeconfig", kubeconfig, "--discovery-check-interval-secs", "3",
           "--discovery-watch-timeout-secs", "1.5", "--disable-load-monitoring", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def urls(gateway: str) -> set[str] | None:
    try:
        return {w["url"] for w in get_json(gateway + "/workers")["workers"]}
    except OSError:
        return None


def test_cli_serve_with_discovery_only(workers, standin, kubeconfig):
    """No --worker-urls: no reference workers are started; the pods are the fleet."""
    standin.put(worker_pod("w0", workers[0]))
    proc, gateway = serve(kubeconfig)
    try:
        wait_for(lambda: urls(gateway) == {workers[0].url}, 60, "the pod's worker")
        standin.put(worker_pod("w1", workers[1]))
        wait_for(lambda: urls(gateway) == {workers[0].url, workers[1].url}, 8, "w1 added")
    finally:
        out = stop(proc)
    assert "starting two reference workers" not in out
    assert "discovery: registered regular" in out


def test_each_gateway_process_discovers_and_they_converge(workers, standin, kubeconfig):
    standin.put(worker_pod("w0", workers[0]))
    proc, gateway = serve(kubeconfig, "--workers", "2")
    try:
        wait_for(lambda: standin.open_watches() == 2, 60, "a watch from each process")
        standin.put(worker_pod("w1", workers[1]))
        standin.delete("w0")
        want = {workers[1].url}
        # fresh connections land on either process (SO_REUSEPORT): 20 answers in a row agree
        wait_for(lambda: all(urls(gateway) == want for _ in range(20)), 8, "both processes converged")
        assert standin.open_watches() == 2
    finally:
        stop(proc)
