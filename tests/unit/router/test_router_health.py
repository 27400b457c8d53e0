"""Health state machine (pure function) and the checker driving it with real probes."""

from __future__ import annotations

import asyncio

import pytest
from _router_testlib import make_workers

from smg.router import HealthChecker, HealthConfig, HealthStatus, WorkerRegistry, next_status
from smg.router.health import ProbeCounters

CFG = HealthConfig(failure_threshold=3, success_threshold=2, timeout_secs=0.5, interval_secs=0.01)
S = HealthStatus


def run(status, results, cfg=CFG):
    counters = ProbeCounters()
    trace = []
    for ok in results:
        status = next_status(status, counters, ok, cfg)
        trace.append(status)
    return trace


def test_pending_becomes_ready_after_success_threshold():
    assert run(S.PENDING, [True, False, True, True]) == [S.PENDING, S.PENDING, S.PENDING, S.READY]


def test_pending_fails_after_ten_times_failure_threshold_probes():
    trace = run(S.PENDING, [False, True] * 15)  # never two successes in a row
    assert trace[28] is S.PENDING and trace[29] is S.FAILED


def test_ready_flaps_only_after_consecutive_failures():
    trace = run(S.READY, [False, False, True, False, False, False])
    assert trace == [S.READY] * 5 + [S.NOT_READY]


def test_not_ready_recovers_or_fails():
    assert run(S.NOT_READY, [False, True, True])[-1] is S.READY
    trace = run(S.NOT_READY, [False] * 9)
    assert trace[7] is S.NOT_READY and trace[8] is S.FAILED


def test_failed_recovers_and_draining_is_sticky():
    assert run(S.FAILED, [True, False, True, True]) == [S.FAILED, S.FAILED, S.FAILED, S.READY]
    assert run(S.DRAINING, [False] * 20)[-1] is S.DRAINING


async def test_checker_marks_dead_worker_and_recovers_it():
    reg = WorkerRegistry(make_workers(3))
    dead = {reg.all()[1].id}
    probed = []

    async def probe(w):
        probed.append(w.id)
        return w.id not in dead

    hc = HealthChecker(reg, probe, CFG)
    for _ in range(3):
        await hc.check_once()
    assert [w.status for w in reg.all()] == [S.READY, S.NOT_READY, S.READY]
    assert len(reg.available()) == 2
    dead.clear()
    await hc.check_once()
    await hc.check_once()
    assert all(w.status is S.READY for w in reg.all())
    assert len(probed) == 15


async def test_probe_error_and_timeout_count_as_failures():
    reg = WorkerRegistry(make_workers(2))
    a, b = reg.all()
    hang = asyncio.Event()

    async def probe(w):
        if w is a:
            raise ConnectionError("refused")
        await hang.wait()  # never set: times out
        return True

    cfg = HealthConfig(failure_threshold=1, timeout_secs=0.05)
    await HealthChecker(reg, probe, cfg).check_once()
    assert a.status is S.NOT_READY and b.status is S.NOT_READY


async def test_failed_workers_removed_when_configured():
    reg = WorkerRegistry(make_workers(2, status=S.NOT_READY))
    events = []
    reg.subscribe(lambda ev, w: events.append(ev))

    async def probe(w):
        return False

    hc = HealthChecker(reg, probe, HealthConfig(failure_threshold=1, remove_unhealthy=True))
    for _ in range(3):
        await hc.check_once()
    assert len(reg) == 0 and events.count("removed") == 2


async def test_background_task_probes_until_stopped():
    reg = WorkerRegistry(make_workers(1, status=S.PENDING))
    became_ready = asyncio.Event()
    reg.subscribe(lambda ev, w: ev == "status" and w.status is S.READY and became_ready.set())

    async def probe(w):
        return True

    hc = HealthChecker(reg, probe, CFG)
    hc.start()
    await asyncio.wait_for(became_ready.wait(), 5)
    await hc.stop()
    assert hc._task is None


async def test_disabled_checker_does_not_start():
    hc = HealthChecker(WorkerRegistry(), lambda w: None, HealthConfig(enabled=False))
    hc.start()
    assert hc._task is None


@pytest.mark.parametrize("kw", [{"failure_threshold": 0}, {"interval_secs": 0}])
def test_bad_config_rejected(kw):
    with pytest.raises(ValueError):
        HealthConfig(**kw)
