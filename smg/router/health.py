"""Active health checking with consecutive-failure/success thresholds (SMG state machine).

Per worker, each probe result moves its status:

- pending -> ready after ``success_threshold`` consecutive successes;
  pending -> failed after ``10 * failure_threshold`` probes without becoming ready;
- ready -> not_ready after ``failure_threshold`` consecutive failures;
- not_ready -> ready after ``success_threshold`` consecutive successes;
  not_ready -> failed after ``3 * failure_threshold`` consecutive failures;
- failed is terminal (the worker is removed when ``remove_unhealthy`` is set);
  draining workers are not probed.

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

__all__ = ["HealthChecker", "HealthConfig", "ProbeCounters", "next_status"]

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

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.success_threshold < 1:
            raise ValueError("health thresholds must be >= 1")
        if self.interval_secs <= 0 or self.timeout_secs <= 0:
            raise ValueError("health interval and timeout must be > 0")


@dataclass
class ProbeCounters:
    """What the state machine remembers about one worker between probes."""

    consecutive_failures: int = 0
    consecutive_successes: int = 0
    probes: int = 0


def next_status(status: HealthStatus, counters: ProbeCounters, ok: bool, config: HealthConfig) -> HealthStatus:
    """Apply one probe result: update ``counters`` in place and return the new status."""
    if status in (HealthStatus.FAILED, HealthStatus.DRAINING):
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
    return status


class HealthChecker:
    """Probes every registered worker each ``interval_secs`` and applies :func:`next_status`."""

    def __init__(self, registry: WorkerRegistry, probe: Probe, config: HealthConfig = HealthConfig()) -> None:
        self.registry = registry
        self.probe = probe
        self.config = config
        self._counters: dict[str, ProbeCounters] = {}
        self._task: asyncio.Task | None = None
        self._unsubscribe = registry.subscribe(self._on_registry)

    def counters(self, worker_id: str) -> ProbeCounters:
        return self._counters.setdefault(worker_id, ProbeCounters())

    async def check_once(self) -> None:
        """Probe every worker once (concurrently) and apply the state machine."""
        workers = [
            w for w in self.registry.all() if w.status not in (HealthStatus.FAILED, HealthStatus.DRAINING)
        ]
        results = await asyncio.gather(*(self._probe(w) for w in workers))
        for worker, ok in zip(workers, results):
            if self.registry.get(worker.id) is not worker:
                continue  # removed or replaced while the probe ran
            new = next_status(worker.status, self.counters(worker.id), ok, self.config)
            if new is not worker.status:
                log.info("worker %s: %s -> %s", worker.url, worker.status.value, new.value)
                worker.status = new
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
        """Run :meth:`check_once` every ``interval_secs`` in a background task."""
        if not self.config.enabled or self._task is not None:
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="smg-health-checker")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def close(self) -> None:
        self._unsubscribe()

    async def _run(self) -> None:
        while True:
            try:
                await self.check_once()
            except Exception:  # keep checking; one bad round must not end health checks
                log.exception("health check round failed")
            await asyncio.sleep(self.config.interval_secs)

    def _on_registry(self, event: str, worker: Worker) -> None:
        if event in ("added", "removed"):
            self._counters.pop(worker.id, None)
