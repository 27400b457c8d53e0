"""Router facade: candidate filtering, exclusion of tried workers, per-model policies, hooks."""

from __future__ import annotations

import asyncio

from _router_testlib import make_workers

from smg.router import (
    BreakerConfig,
    CircuitBreaker,
    HealthStatus,
    LoadReport,
    Policy,
    RequestInfo,
    Router,
    Worker,
    WorkerRegistry,
    create_policy,
)


class Recorder(Policy):
    name = "recorder"

    def __init__(self):
        super().__init__()
        self.calls = []
        self.maintained = asyncio.Event()

    def select(self, workers, request):
        self.calls.append(("select", [w.url for w in workers]))
        return workers[0] if workers else None

    def on_complete(self, worker, request, success):
        self.calls.append(("complete", worker.url, success))

    def on_load_report(self, worker, report):
        self.calls.append(("report", worker.url, report.running))

    def on_worker_removed(self, worker):
        self.calls.append(("removed", worker.url))

    def maintenance(self):
        self.calls.append(("maintenance",))
        self.maintained.set()


def test_retry_selection_skips_tried_workers():
    reg = WorkerRegistry(make_workers(3))
    router = Router(reg, create_policy("round_robin"))
    tried: set[str] = set()
    for _ in range(3):
        w = router.select(RequestInfo(text="x"), exclude=tried)
        assert w.id not in tried
        tried.add(w.id)
    # every worker tried: all are candidates again rather than failing the request
    assert router.select(RequestInfo(text="x"), exclude=tried) is not None


def test_only_available_workers_of_the_model_are_candidates():
    reg = WorkerRegistry()
    a = reg.add(Worker("http://a", model_id="llama"))
    b = reg.add(Worker("http://b", model_id="qwen"))
    c = reg.add(Worker("http://c", model_id="llama", breaker=CircuitBreaker(BreakerConfig(failure_threshold=1))))
    rec = Recorder()
    router = Router(reg, rec)
    assert router.select(RequestInfo(model="llama")) is a
    assert rec.calls[-1] == ("select", [a.url, c.url])
    c.begin()
    c.end(False)  # breaker opens
    a.status = HealthStatus.NOT_READY
    assert router.select(RequestInfo(model="llama")) is None
    assert router.select(RequestInfo(model="mistral")) is None
    assert router.select(RequestInfo(model="qwen")) is b


def test_policies_by_model_and_hooks():
    reg = WorkerRegistry(make_workers(2))
    default, special = Recorder(), Recorder()
    router = Router(reg, default, policies_by_model={"special": special})
    w = router.select(RequestInfo(model="special"))
    router.on_complete(w, RequestInfo(model="special"), True)
    router.select(RequestInfo(model="other"))
    assert [c[0] for c in special.calls] == ["select", "complete"]
    assert [c[0] for c in default.calls] == ["select"]
    router.on_load_report(w, LoadReport(running=3))
    assert w.load_report == LoadReport(running=3)
    assert default.calls[-1] == special.calls[-1] == ("report", w.url, 3)
    router.maintenance()
    assert default.calls[-1] == special.calls[-1] == ("maintenance",)
    reg.remove(w.id)
    assert default.calls[-1] == special.calls[-1] == ("removed", w.url)
    router.close()
    reg.remove(reg.all()[0].id)
    assert default.calls[-1] == ("removed", w.url)  # no longer listening


async def test_background_maintenance_runs_until_stopped():
    rec = Recorder()
    router = Router(WorkerRegistry(make_workers(1)), rec)
    router.start_maintenance(0.01)
    await asyncio.wait_for(rec.maintained.wait(), 5)
    await router.stop()
    assert router._maintenance_task is None


def test_cache_aware_through_router_drops_removed_worker():
    reg = WorkerRegistry(make_workers(3))
    policy = create_policy("cache_aware")
    router = Router(reg, policy)
    text = "shared document " * 50
    holder = router.select(RequestInfo(text=text))
    assert router.select(RequestInfo(text=text + "more")) is holder
    reg.remove(holder.id)
    assert policy.tree(None).tenant_size(holder.url) == 0
    assert router.select(RequestInfo(text=text)) is not holder


def test_failing_worker_leaves_rotation_and_returns_after_half_open():
    now = [0.0]
    cfg = BreakerConfig(failure_threshold=3, success_threshold=1, timeout_duration_secs=30.0)
    workers = [Worker(f"http://127.0.0.1:{9100 + i}", breaker=CircuitBreaker(cfg, clock=lambda: now[0]))
               for i in range(3)]
    reg = WorkerRegistry(workers)
    router = Router(reg, create_policy("round_robin"))
    bad = workers[1]
    served = []
    for _ in range(30):
        w = router.select(RequestInfo())
        w.begin()
        w.end(w is not bad)
        served.append(w)
    assert served[:3].count(bad) == 1
    assert served[-20:].count(bad) == 0  # open after 3 consecutive failures
    assert bad.breaker.state == "open"
    now[0] += 30.0
    assert bad in reg.available()  # half-open: let through again
    bad.begin()
    bad.end(True)
    assert bad.breaker.state == "closed"
