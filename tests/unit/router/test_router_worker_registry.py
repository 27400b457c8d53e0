"""Worker bookkeeping and the registry's views and change events."""

from __future__ import annotations

from _router_testlib import make_workers

from smg.router import BreakerConfig, CircuitBreaker, HealthStatus, Worker, WorkerRegistry, WorkerRole, worker_id


def test_worker_id_is_stable_and_role_specific():
    a = Worker("http://127.0.0.1:8000/")
    b = Worker("http://127.0.0.1:8000")
    p = Worker("http://127.0.0.1:8000", role=WorkerRole.PREFILL)
    assert a.id == b.id == worker_id("http://127.0.0.1:8000")
    assert p.id != a.id
    assert a.id.isalnum()


def test_begin_end_tracks_load_and_feeds_breaker():
    w = Worker("http://127.0.0.1:1", breaker=CircuitBreaker(BreakerConfig(failure_threshold=2)))
    w.begin()
    w.begin()
    assert (w.load, w.processed) == (2, 2)
    w.end(False)
    w.end(None)  # client error: not the worker's fault
    assert w.load == 0 and w.breaker.consecutive_failures == 1
    w.begin()
    w.end(False)
    assert not w.is_available()
    w.end(True)  # never below zero
    assert w.load == 0
    d = w.to_dict()
    assert d["circuit_breaker"]["state"] == "open" and d["healthy"] is False and d["role"] == "regular"


def test_available_filters_status_breaker_model_role():
    reg = WorkerRegistry()
    a = reg.add(Worker("http://a", model_id="m1"))
    b = reg.add(Worker("http://b", model_id="m2"))
    anym = reg.add(Worker("http://c"))
    pre = reg.add(Worker("http://d", model_id="m1", role=WorkerRole.PREFILL))
    assert reg.available("m1") == [a, anym, pre]
    assert reg.available("m1", WorkerRole.REGULAR) == [a, anym]
    assert reg.available() == [a, b, anym, pre]
    b.status = HealthStatus.NOT_READY
    assert b not in reg.available()
    for _ in range(10):
        a.breaker.record_failure()
    assert reg.available("m1", WorkerRole.REGULAR) == [anym]
    assert reg.models() == ["m1", "m2"]


def test_events_added_status_removed_and_unsubscribe():
    reg = WorkerRegistry()
    events = []
    unsubscribe = reg.subscribe(lambda ev, w: events.append((ev, w.url, w.status.value)))
    w = reg.add(Worker("http://a", status=HealthStatus.PENDING))
    w.status = HealthStatus.READY
    w.status = HealthStatus.READY  # no change, no event
    assert reg.remove(w.id) is w
    assert reg.remove(w.id) is None
    w.status = HealthStatus.FAILED  # detached worker: no event
    assert events == [("added", "http://a", "pending"), ("status", "http://a", "ready"), ("removed", "http://a", "ready")]
    unsubscribe()
    reg.add(Worker("http://b"))
    assert len(events) == 3


def test_replacing_same_id_keeps_one_entry_and_detaches_old():
    reg = WorkerRegistry()
    events = []
    reg.subscribe(lambda ev, w: events.append(ev))
    old = reg.add(Worker("http://a"))
    new = reg.add(Worker("http://a", model_id="m"))
    assert reg.all() == [new] and reg.get(old.id) is new
    old.status = HealthStatus.FAILED
    assert events == ["added", "added"]


def test_broken_subscriber_does_not_stop_others():
    reg = WorkerRegistry()
    seen = []

    def bad(ev, w):
        raise RuntimeError("boom")

    reg.subscribe(bad)
    reg.subscribe(lambda ev, w: seen.append(ev))
    reg.add(make_workers(1)[0])
    assert seen == ["added"]


def test_find_by_url():
    reg = WorkerRegistry(make_workers(3))
    assert reg.find("http://127.0.0.1:9001/").url == "http://127.0.0.1:9001"
    assert reg.find("http://nowhere") is None
    assert len(reg) == 3
