"""Health probing is never over: failed workers keep being probed (with backoff) and come
back; workers that are not ready are probed on a fast schedule, so one that comes up
after the gateway is used within seconds, not after the next minute-long interval."""

from __future__ import annotations

import asyncio

from _router_testlib import make_workers

from smg.router import HealthChecker, HealthConfig, HealthStatus, WorkerRegistry
from smg.router.health import ProbeCounters, next_delay, next_status

S = HealthStatus


def test_fast_schedule_doubles_up_to_the_interval_and_resets_when_ready():
    cfg = HealthConfig(interval_secs=60, fast_interval_secs=1, fast_max_secs=30)
    c = ProbeCounters()
    delays = [next_delay(S.NOT_READY, c, False, cfg) for _ in range(8)]
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]
    assert next_delay(S.READY, c, True, cfg) == 60
    # a ready worker that fails one probe is re-probed soon, not a minute later
    assert next_delay(S.READY, c, False, cfg) == 1
    # a worker answering again but not ready yet is confirmed at once, not after the backoff
    c = ProbeCounters()
    assert [next_delay(S.FAILED, c, False, cfg) for _ in range(4)] == [1, 2, 4, 8]
    assert next_delay(S.PENDING, c, True, cfg) == 1
    assert next_delay(S.PENDING, c, False, cfg) == 1  # the backoff starts again
    # the fast schedule never waits longer than the interval itself
    assert next_delay(S.NOT_READY, ProbeCounters(), False, HealthConfig(interval_secs=0.5)) == 0.5


def test_failed_worker_comes_back_after_success_threshold():
    cfg = HealthConfig(failure_threshold=1, success_threshold=2)
    c = ProbeCounters()
    status = S.READY
    for ok in [False, False, False]:
        status = next_status(status, c, ok, cfg)
    assert status is S.FAILED
    status = next_status(status, c, True, cfg)
    assert status is S.FAILED
    assert next_status(status, c, True, cfg) is S.READY


async def _wait_status(worker, status, timeout=10.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while worker.status is not status:
        assert loop.time() < end, f"{worker} never became {status}"
        await asyncio.sleep(0.005)


async def test_background_checker_revives_a_failed_worker():
    """Down long enough to be failed, then up again: the checker brings it back."""
    reg = WorkerRegistry(make_workers(1, status=S.READY))
    (w,) = reg.all()
    up = False
    probes = []

    async def probe(worker):
        probes.append(up)
        return up

    cfg = HealthConfig(failure_threshold=1, success_threshold=2, interval_secs=0.2, fast_interval_secs=0.01,
                       timeout_secs=1)
    hc = HealthChecker(reg, probe, cfg)
    hc.start()
    try:
        await _wait_status(w, S.FAILED)
        n = len(probes)
        up = True
        await _wait_status(w, S.READY)
        assert len(probes) >= n + 2 and probes[-2:] == [True, True]
        assert w.is_available()
    finally:
        await hc.stop()


async def test_pending_worker_probed_fast_while_ready_ones_wait_the_interval():
    """With a long interval, a worker that comes up after start is READY after a few fast
    probes; the ready worker beside it is probed once (at start) in that time."""
    reg = WorkerRegistry(make_workers(2, status=S.PENDING))
    late, steady = reg.all()
    late_up = False
    counts = {late.id: 0, steady.id: 0}

    async def probe(worker):
        counts[worker.id] += 1
        return worker is steady or late_up

    cfg = HealthConfig(success_threshold=1, interval_secs=3600, fast_interval_secs=0.01, timeout_secs=1)
    hc = HealthChecker(reg, probe, cfg)
    hc.start()
    try:
        await _wait_status(steady, S.READY)
        while counts[late.id] < 4:  # the late worker is re-probed on the fast schedule
            await asyncio.sleep(0.005)
        late_up = True
        await _wait_status(late, S.READY)
        assert counts[steady.id] == 1
    finally:
        await hc.stop()


async def test_added_worker_is_probed_at_once():
    reg = WorkerRegistry()
    probed = asyncio.Event()

    async def probe(worker):
        probed.set()
        return True

    hc = HealthChecker(reg, probe, HealthConfig(interval_secs=3600))
    hc.start()
    try:
        await asyncio.sleep(0)  # the checker is waiting for its (hour-long) interval
        reg.add(make_workers(1, status=S.PENDING)[0])
        await asyncio.wait_for(probed.wait(), 5)
    finally:
        await hc.stop()


async def test_fast_probes_do_not_fail_a_slow_starter_or_a_restart_early():
    """Many fast failed probes leave a pending worker pending and a ready one not ready
    (SMG fails them after 30 / 9 probes an interval apart: 30 / 9 minutes by default), so
    --remove-unhealthy-workers does not remove them; both are used once they answer."""
    starter, restarted = make_workers(2, status=S.PENDING)
    restarted.status = S.READY
    reg = WorkerRegistry([starter, restarted])
    up = False
    probes = []

    async def probe(worker):
        probes.append(worker.id)
        return up

    cfg = HealthConfig(interval_secs=3600, fast_interval_secs=0.001, fast_max_secs=0.001, success_threshold=1,
                       failure_threshold=1, remove_unhealthy=True)
    hc = HealthChecker(reg, probe, cfg)
    hc.start()
    try:
        while probes.count(starter.id) < 40 or probes.count(restarted.id) < 40:
            await asyncio.sleep(0.005)
        assert (starter.status, restarted.status, len(reg)) == (S.PENDING, S.NOT_READY, 2)
        up = True
        await _wait_status(starter, S.READY)
        await _wait_status(restarted, S.READY)
    finally:
        await hc.stop()
