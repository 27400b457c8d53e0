"""Active health checking with consecutive-failure/success thresholds (SMG state machine).

Per worker, each probe result moves its status:

- pending -> ready after ``success_threshold`` consecutive successes;
  pending -> failed after ``10 * failure_threshold`` probes without becoming ready;
- ready -> not_ready after ``failure_threshold`` consecutive failures;
- not_ready -> ready after ``success_threshold`` consecutive successes;
  not_ready -> failed after ``3 * failure_threshold`` consecutive failures;
- failed -> ready after ``success_threshold`` consecutive successes: unlike SMG, failed
  is not terminal (a worker restarted after a crash comes back); with
  ``remove_unhealthy`` a failed worker is removed instead. Draining workers are not probed.

Each worker has its own schedule: every ``interval_secs`` while it is ready and answers;
otherwise on the fast schedule: after a failed probe ``fast_interval_secs``, doubling
per failure up to ``fast_max_secs`` (at most ``interval_secs``); after a good probe of a
worker not ready yet, ``fast_interval_secs`` again (to confirm). So a worker that comes up
after the gateway (or back after a crash) is used within seconds, and one that stays
down costs a probe every few seconds.

A single failed probe never takes a busy worker out (sglang#9198). The probe is any
``async (worker) -> bool``; a probe that raises or exceeds ``timeout_secs`` is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from smg.router.registry import WorkerRegistry
from smg.router.worker import HealthStatus, Worker

__all__ = ["HealthChecker", "HealthConfig", "ProbeCounters", "next_delay", "next_status"]

log = logging.getLogger(__name__)

Probe = Callable[[Worker], Awaitable[bool]]


@dataclass(frozen=True)
class HealthConfig:
    """Health check settings (defaults are SMG's CLI defaults)."""

    interval_secs: float = field(
        default=60.0, metadata={"help": "seconds between health checks", "flag": "--health-check-interval-secs"}
    )
    timeout_secs: float = field(
        default=5.0, metadata={"help": "timeout of one health probe", "flag": "--health-check-timeout-secs"}
    )
    failure_threshold: int = field(
        default=3, metadata={"help": "consecutive failed probes that mark a worker not ready",
                             "flag": "--health-failure-threshold"}
    )
    success_threshold: int = field(
        default=2, metadata={"help": "consecutive good probes that mark a worker ready",
                             "flag": "--health-success-threshold"}
    )
    endpoint: str = field(
        default="/health", metadata={"help": "HTTP path probed on each worker", "flag": "--health-check-endpoint"}
    )
    enabled: bool = field(default=True, metadata={"help": "run active health checks", "flag": "--health-check"})
    remove_unhealthy: bool = field(
        default=False, metadata={"help": "remove workers whose health reaches failed",
                                 "flag": "--remove-unhealthy-workers"}
    )
    fast_interval_secs: float = field(
        default=1.0, metadata={"help": "first delay between probes of a worker that is not ready "
                                       "(doubling up to fast_max_secs)"}
    )
    fast_max_secs: float = field(
        default=5.0, metadata={"help": "longest delay between probes of a worker that is not ready "
                                       "(never above the interval)"}
    )

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.success_threshold < 1:
            raise ValueError("health thresholds must be >= 1")
        if self.interval_secs <= 0 or self.timeout_secs <= 0 or self.fast_interval_secs <= 0:
            raise ValueError("health intervals and timeout must be > 0")


@dataclass
class ProbeCounters:
    """What the state machine remembers about one worker between probes."""

    consecutive_failures: int = 0
    consecutive_successes: int = 0
    probes: int = 0
    next_at: float = 0.0  # loop time of the next scheduled probe (0: at once)
    since: float = 0.0  # loop time of the first probe
    failing_since: float = 0.0  # loop time of the first of the current run of failed probes
    backoff: float = 0.0  # the next delay on the fast schedule (0: fast_interval_secs)
    down_while_open: bool = False  # a probe failed while the worker's breaker was open


def next_status(status: HealthStatus, counters: ProbeCounters, ok: bool, config: HealthConfig) -> HealthStatus:
    """Apply one probe result: update ``counters`` in place and return the new status."""
    if status is HealthStatus.DRAINING:
        return status
    counters.probes += 1
    if ok:
        counters.consecutive_successes += 1
        counters.consecutive_failures = 0
    else:
        counters.consecutive_failures += 1
        counters.consecutive_successes = 0
    fail_n, ok_n = config.failure_threshold, config.success_threshold
    if status is HealthStatus.PENDING:
        if counters.consecutive_successes >= ok_n:
            return HealthStatus.READY
        if counters.probes >= 10 * fail_n:
            return HealthStatus.FAILED
    elif status is HealthStatus.READY:
        if counters.consecutive_failures >= fail_n:
            return HealthStatus.NOT_READY
    elif status is HealthStatus.NOT_READY:
        if counters.consecutive_successes >= ok_n:
            return HealthStatus.READY
        if counters.consecutive_failures >= 3 * fail_n:
            return HealthStatus.FAILED
    elif status is HealthStatus.FAILED:
        if counters.consecutive_successes >= ok_n:
            return HealthStatus.READY
    return status


def next_delay(status: HealthStatus, counters: ProbeCounters, ok: bool, config: HealthConfig) -> float:
    """Seconds until the next probe of a worker whose probe said ``ok`` and left it in
    ``status``: the interval while it is ready and answers, else the fast schedule
    (``fast_interval_secs`` doubling up to the interval)."""
    if ok:
        counters.backoff = 0.0  # answering again: confirm soon (or the normal interval)
        return config.interval_secs if status is HealthStatus.READY else min(config.fast_interval_secs,
                                                                               config.interval_secs)
    ceiling = min(config.fast_max_secs, config.interval_secs)
    delay = min(counters.backoff or config.fast_interval_secs, ceiling)
    counters.backoff = min(delay * 2, ceiling)
    return delay


class HealthChecker:
    """Probes every registered worker on its own schedule (:func:`next_delay`) and applies
    :func:`next_status`; a worker added is probed at once."""

    def __init__(self, registry: WorkerRegistry, probe: Probe, config: HealthConfig = HealthConfig()) -> None:
        self.registry = registry
        self.probe = probe
        self.config = config
        self._counters: dict[str, ProbeCounters] = {}
        self._task: asyncio.Task | None = None
        self._probing: dict[str, asyncio.Task] = {}
        self._waiter: asyncio.Future | None = None  # the scheduler's sleep, to cut short
        self._hooked: set[int] = set()  # breakers whose opening brings the next probe forward
        self._unsubscribe = registry.subscribe(self._on_registry)

    def counters(self, worker_id: str) -> ProbeCounters:
        return self._counters.setdefault(worker_id, ProbeCounters())

    async def check_once(self) -> None:
        """Probe every worker once (concurrently) and apply the state machine."""
        workers = [w for w in self.registry.all() if w.status is not HealthStatus.DRAINING]
        results = await asyncio.gather(*(self._probe(w) for w in workers))
        for worker, ok in zip(workers, results):
            self._apply(worker, ok, scheduled=False)

    def _apply(self, worker: Worker, ok: bool, scheduled: bool = True) -> None:
        if self.registry.get(worker.id) is not worker:
            return  # removed or replaced while the probe ran
        counters = self.counters(worker.id)
        now = asyncio.get_running_loop().time()
        if not counters.probes:
            counters.since = now
        if not ok and not counters.consecutive_failures:
            counters.failing_since = now
        old = worker.status
        new = next_status(old, counters, ok, self.config)
        if new is HealthStatus.FAILED and scheduled:
            # the fast schedule must not fail a worker sooner than SMG's schedule would (its
            # probes an interval apart): a slow starter stays pending, a restart not ready
            # (check_once, probing on demand, counts probes as they come)
            cfg = self.config
            if old is HealthStatus.PENDING:
                floor, start = 10 * cfg.failure_threshold * cfg.interval_secs, counters.since
            else:
                floor, start = 3 * cfg.failure_threshold * cfg.interval_secs, counters.failing_since
            if now - start < floor:
                new = old
        if new is not worker.status:
            log.info("worker %s: %s -> %s", worker.url, worker.status.value, new.value)
            worker.status = new
        if worker.breaker.state == "open":  # ejected: seen down, then answering, it is tried again
            if not ok:
                counters.down_while_open = True
            elif counters.down_while_open:
                counters.down_while_open = False
                log.info("worker %s answers again: circuit breaker half-open", worker.url)
                worker.breaker.recovered()
        counters.next_at = now + next_delay(new, counters, ok, self.config)
        if new is HealthStatus.FAILED and self.config.remove_unhealthy:
            self.registry.remove(worker.id)

    async def _probe(self, worker: Worker) -> bool:
        try:
            return bool(await asyncio.wait_for(self.probe(worker), self.config.timeout_secs))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any probe error is a failed probe
            log.debug("health probe of %s failed: %r", worker.url, exc)
            return False

    def start(self) -> None:
        """Probe the workers on their schedules in a background task."""
        if not self.config.enabled or self._task is not None:
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="smg-health-checker")

    async def stop(self) -> None:
        task, self._task = self._task, None
        probing, self._probing = list(self._probing.values()), {}
        for t in [task, *probing]:
            if t is not None:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t

    def close(self) -> None:
        self._unsubscribe()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            soonest = now + self.config.interval_secs
            for worker in self.registry.all():
                if id(worker.breaker) not in self._hooked:
                    self._hook(worker)
                if worker.status is HealthStatus.DRAINING or worker.id in self._probing:
                    continue
                due = self.counters(worker.id).next_at
                if due <= now:
                    self._probing[worker.id] = loop.create_task(self._probe_one(worker))
                else:
                    soonest = min(soonest, due)
            # a future and a timer, not wait_for: in 3.11 wait_for swallows a cancel that
            # comes with the wake-up, and stop() would wait for the next round
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(max(soonest - loop.time(), 0.001), _wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None

    async def _probe_one(self, worker: Worker) -> None:
        try:
            ok = await self._probe(worker)
            self._apply(worker, ok)
        except Exception:  # keep checking; one bad probe must not end health checks
            log.exception("health check of %s failed", worker.url)
            self.counters(worker.id).next_at = asyncio.get_running_loop().time() + self.config.interval_secs
        finally:
            self._probing.pop(worker.id, None)
            _wake(self._waiter)

    def _hook(self, worker: Worker) -> None:
        """Once ``worker``'s breaker opens, probe it on the fast schedule (so a restart is
        seen within seconds; :meth:`CircuitBreaker.recovered`)."""
        self._hooked.add(id(worker.breaker))

        def opened(old: str, new: str) -> None:
            if new != "open" or self.registry.get(worker.id) is not worker:
                return
            try:
                due = asyncio.get_running_loop().time() + self.config.fast_interval_secs
            except RuntimeError:  # opened outside the loop (a test driving the breaker)
                return
            counters = self.counters(worker.id)
            if counters.next_at > due:
                counters.next_at = due
            _wake(self._waiter)

        worker.breaker.on_transition(opened)

    def _on_registry(self, event: str, worker: Worker) -> None:
        if event in ("added", "removed"):
            self._counters.pop(worker.id, None)
            _wake(self._waiter)


def _wake(waiter: asyncio.Future | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
