"""Discovery end to end in one process: the real kubernetes_asyncio client against the API
server stand-in (tests/k8s_standin.py), into a real AppState. After each change or fault
the discovered workers must equal the ready pods within one re-list interval (3 s here;
the deadlines below are that plus start-up slack), polled, never slept on."""

from __future__ import annotations

import pytest
from _discovery_lib import discovered, until
from k8s_standin import ApiServerStandIn, pod

from smg.router import HealthStatus, WorkerRole

RELIST = 3.0
WITHIN = RELIST + 2.0


def worker_pod(name: str, ip: str, **kw) -> dict:
    labels = {"app": "worker", "model": "m1", **kw.pop("labels", {})}
    return pod(name, ip, labels=labels, **kw)


def expected(standin: ApiServerStandIn, port: int = 80) -> set[tuple[str, str]]:
    """The ready pods of the stand-in as (url, role)."""
    out = set()
    for p in standin.all_pods():
        ready = p["status"]["phase"] == "Running" and p["status"]["conditions"][0]["status"] == "True"
        if ready and p["metadata"]["labels"].get("app") == "worker":
            out.add((f"http://{p['status']['podIP']}:{port}", "regular"))
    return out


async def converged(standin, state, what):
    await until(lambda: discovered(state) == expected(standin), WITHIN, what)


async def test_pods_added_made_ready_unready_deleted(standin, gateway):
    standin.put(worker_pod("a", "127.0.0.2"))
    standin.put(worker_pod("b", "127.0.0.3", ready=False))
    standin.put(pod("other", "127.0.0.9", labels={"app": "database"}))
    state = await gateway()
    assert discovered(state) == {("http://127.0.0.2:80", "regular")}  # the first list is applied at start
    standin.put(worker_pod("c", "127.0.0.4"))
    await converged(standin, state, "pod added")
    standin.set_ready("b", True)
    await converged(standin, state, "pod made ready")
    assert len(discovered(state)) == 3
    standin.set_ready("a", False)
    await converged(standin, state, "pod made unready")
    standin.delete("c")
    await converged(standin, state, "pod deleted")
    assert discovered(state) == {("http://127.0.0.3:80", "regular")}
    gone = [w for w in state.registry.all() if w.url.startswith(("http://127.0.0.2", "http://127.0.0.4"))]
    assert gone == []  # drained (nothing in flight) and removed
    text = state.metrics.render().decode()
    assert "smg_discovery_registrations_total 3.0" in text
    assert "smg_discovery_deregistrations_total 2.0" in text
    assert "smg_discovery_workers_discovered 1.0" in text
    assert "smg_discovery_sync_duration_seconds_count" in text


@pytest.mark.parametrize("fault", ["drop_watches", "stall_watches", "expire_watches"])
async def test_watch_fault_while_pods_change(standin, gateway, fault):
    for i in range(3):
        standin.put(worker_pod(f"p{i}", f"127.0.0.{10 + i}"))
    state = await gateway()
    await converged(standin, state, "start")
    await until(lambda: standin.open_watches() >= 1, WITHIN, "a watch open")
    lists = standin.lists
    getattr(standin, fault)()
    standin.delete("p0")
    standin.set_ready("p1", False)
    standin.put(worker_pod("p3", "127.0.0.13"))
    standin.put(worker_pod("p4", "127.0.0.14", ready=False))
    await converged(standin, state, f"after {fault}")
    assert discovered(state) == {("http://127.0.0.12:80", "regular"), ("http://127.0.0.13:80", "regular")}
    assert standin.lists > lists  # the fault was answered by a re-list


async def test_expired_watch_relists_at_once(standin, gateway):
    """A 410 is answered by an immediate re-list, well before the re-list interval."""
    standin.put(worker_pod("a", "127.0.0.2"))
    state = await gateway(discovery_check_interval_secs=60.0, discovery_watch_timeout_secs=30.0)
    await until(lambda: standin.open_watches() >= 1, 5, "a watch open")
    standin.expire_watches()
    standin.put(worker_pod("b", "127.0.0.3"))  # delivered to no watch: the old one got the 410
    await converged(standin, state, "re-list after 410")


async def test_periodic_relist_repairs_a_lost_event(standin, gateway):
    """A change the watch never delivered is repaired by the next full re-list."""
    standin.put(worker_pod("a", "127.0.0.2"))
    state = await gateway(discovery_watch_timeout_secs=30.0)
    await until(lambda: standin.open_watches() >= 1, 5, "a watch open")
    standin.lose_events(1)
    standin.delete("a")
    await converged(standin, state, "the safety-net re-list")
    assert discovered(state) == set()


async def test_hand_added_workers_are_never_removed(standin, gateway):
    standin.put(worker_pod("a", "127.0.0.2"))
    state = await gateway(worker_urls=["http://127.0.0.2:80"])
    by_hand = await state.add_worker("http://127.0.0.5:80", model_id="m1", source="api")
    assert {w.source for w in state.registry.all()} == {"static", "api"}  # the pod's URL is the static worker's
    standin.put(worker_pod("b", "127.0.0.5"))  # same URL as the api worker
    standin.put(worker_pod("c", "127.0.0.6"))
    await until(lambda: discovered(state) == {("http://127.0.0.6:80", "regular")}, WITHIN, "c discovered")
    standin.delete("a")
    standin.delete("b")
    standin.delete("c")
    await until(lambda: discovered(state) == set(), WITHIN, "c gone")
    urls = {w.url: w.source for w in state.registry.all()}
    assert urls == {"http://127.0.0.2:80": "static", "http://127.0.0.5:80": "api"}
    assert state.registry.get(by_hand.id) is by_hand and by_hand.status is HealthStatus.READY


async def test_draining_worker_gets_no_new_requests_until_in_flight_ones_end(standin, gateway):
    standin.put(worker_pod("a", "127.0.0.2"))
    standin.put(worker_pod("b", "127.0.0.3"))
    state = await gateway(discovery_drain_timeout_secs=30.0)
    worker = state.registry.find("http://127.0.0.2:80")
    worker.begin()  # a request in flight
    standin.delete("a")
    await until(lambda: worker.status is HealthStatus.DRAINING, WITHIN, "draining")
    assert [w.url for w in state.registry.available("m1")] == ["http://127.0.0.3:80"]
    assert state.registry.get(worker.id) is worker  # still there while its request runs
    standin.put(worker_pod("a", "127.0.0.2"))  # the pod comes back before the drain ends
    await until(lambda: worker.status is HealthStatus.READY, WITHIN, "back")
    standin.delete("a")
    await until(lambda: worker.status is HealthStatus.DRAINING, WITHIN, "draining again")
    worker.end(True)
    await until(lambda: state.registry.get(worker.id) is None, 2, "removed once idle")


async def test_pd_selectors_and_multi_port_pods(standin, gateway):
    standin.put(pod("pre", "127.0.0.2", labels={"role": "prefill", "model": "m"},
                    annotations={"sglang.ai/bootstrap-port": "8998", "smg.ai/worker-ports": "8000,8001"}))
    standin.put(pod("dec", "127.0.0.3", labels={"role": "decode", "model": "m"}))
    state = await gateway(pd_disaggregation=True, prefill_selector=["role=prefill"], decode_selector=["role=decode"],
                          selector=[])
    roles = {(w.url, w.role, w.bootstrap_port) for w in state.registry.all()}
    assert roles == {
        ("http://127.0.0.2:8000", WorkerRole.PREFILL, 8998),
        ("http://127.0.0.2:8001", WorkerRole.PREFILL, 8998),
        ("http://127.0.0.3:80", WorkerRole.DECODE, None),
    }
    assert state.pd is not None and len(state.registry.available("m", WorkerRole.PREFILL)) == 2
    standin.delete("pre")
    await until(lambda: {w.role for w in state.registry.all()} == {WorkerRole.DECODE}, WITHIN, "prefill gone")


async def test_model_id_from_annotation_and_namespace(standin, gateway, kubeconfig):
    standin.put(pod("a", "127.0.0.2", namespace="team", labels={"app": "worker"},
                    annotations={"smg.ai/model": "llama"}))
    state = await gateway(model_id_from="annotation:smg.ai/model", service_discovery_namespace="team")
    assert [w.model_id for w in state.registry.all()] == ["llama"]
    state2 = await gateway(model_id_from="namespace", service_discovery_namespace=None)  # every namespace
    assert [w.model_id for w in state2.registry.all()] == ["team"]


async def test_api_server_down_keeps_the_workers_then_catches_up(standin, gateway):
    """Lists failing is not "no pods": the workers stay until a list succeeds again."""
    standin.put(worker_pod("a", "127.0.0.2"))
    standin.put(worker_pod("b", "127.0.0.3"))
    state = await gateway()
    before = discovered(state)
    await until(lambda: standin.open_watches() >= 1, 5, "a watch open")
    standin.fail(True)
    standin.drop_watches()
    standin.delete("a")
    await until(lambda: standin.refused >= 3, WITHIN, "re-lists refused")
    assert discovered(state) == before
    standin.fail(False)
    await converged(standin, state, "after the API server is back")
    assert discovered(state) == {("http://127.0.0.3:80", "regular")}


async def test_a_pod_with_a_new_ip_moves_its_worker(standin, gateway):
    standin.put(worker_pod("a", "127.0.0.2"))
    state = await gateway()
    standin.put(worker_pod("a", "127.0.0.7"))  # restarted elsewhere: MODIFIED with a new podIP
    await converged(standin, state, "the new address")
    assert [w.url for w in state.registry.all()] == ["http://127.0.0.7:80"]
