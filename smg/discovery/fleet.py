"""The discovered part of the worker registry: pod snapshots in, worker changes out.

Each watch (:mod:`smg.discovery.watch`) hands its role's pods over after every change;
:meth:`Fleet.update` turns them into worker specs (:func:`smg.discovery.pods.pod_workers`)
and :meth:`Fleet.reconcile` makes the registry agree, one pass at a time (a lock):

* a spec with no worker yet is added through ``AppState.add_worker`` (``source``
  ``"discovery"``); one whose URL and role a hand-added worker already has (start-up
  ``--worker-urls`` or ``POST /workers``) is left to that worker: discovery never touches
  a worker it did not add;
* a discovered worker whose pod is gone, NotReady or terminating drains: status
  DRAINING (no new requests; health checks skip it), removed once its in-flight requests
  are done or ``--discovery-drain-timeout-secs`` passed. A pod that comes back while its
  worker drains makes it READY again.

Log lines name each change; counters and the gauge are in :mod:`smg.discovery.metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from smg.config.discovery import DiscoverySettings, parse_model_id_from
from smg.discovery.metrics import DiscoveryMetrics
from smg.discovery.pods import WorkerSpec, pod_workers
from smg.router import HealthStatus, Worker, WorkerRole
from smg.security.urls import redact

if TYPE_CHECKING:
    from smg.http.state import AppState

__all__ = ["DRAIN_POLL_SECS", "Fleet", "cancel_all"]

log = logging.getLogger(__name__)

DRAIN_POLL_SECS = 0.05


class Fleet:
    def __init__(self, state: AppState, settings: DiscoverySettings, metrics: DiscoveryMetrics) -> None:
        self.state = state
        self.settings = settings
        self.metrics = metrics
        self.model_from = parse_model_id_from(settings.model_id_from)
        self.desired: dict[str, dict[tuple[str, str], WorkerSpec]] = {}  # role -> specs
        self.owned: dict[tuple[str, str], Worker] = {}  # workers discovery added (draining ones too)
        self._drains: dict[tuple[str, str], asyncio.Task] = {}
        self._skipped: set[tuple[str, str]] = set()  # hand-added keys already logged
        self._lock = asyncio.Lock()

    async def update(self, role: str, pods: Mapping[str, Mapping[str, Any]]) -> None:
        """The pods of ``role`` now: reconcile the registry with them."""
        settings = self.settings
        specs: dict[tuple[str, str], WorkerSpec] = {}
        for pod in pods.values():
            for spec in pod_workers(pod, role=role, port=settings.service_discovery_port,
                                    scheme=settings.discovery_scheme, model_from=self.model_from):
                specs[spec.key] = spec
        self.desired[role] = specs
        await self.reconcile()

    def wanted(self) -> dict[tuple[str, str], WorkerSpec]:
        out: dict[tuple[str, str], WorkerSpec] = {}
        for specs in self.desired.values():
            out.update(specs)
        return out

    def serving(self) -> list[Worker]:
        """Discovered workers that are not draining."""
        return [w for w in self.owned.values() if w.status is not HealthStatus.DRAINING]

    async def reconcile(self) -> None:
        async with self._lock:
            wanted = self.wanted()
            registry = self.state.registry
            for key, worker in list(self.owned.items()):
                if registry.get(worker.id) is not worker:  # removed by hand or by health checks
                    self.owned.pop(key)
                    self._cancel_drain(key)
            for key, worker in self.owned.items():
                if key not in wanted and key not in self._drains:
                    worker.status = HealthStatus.DRAINING  # now, not when the task first runs: no new requests
                    log.info("discovery: draining %s (pod gone or not ready; %d in flight)", redact(worker.url),
                             worker.load)
                    self._drains[key] = asyncio.get_running_loop().create_task(
                        self._drain(key, worker), name=f"smg-discovery-drain-{worker.id}")
                elif key in wanted and key in self._drains:
                    self._cancel_drain(key)
                    worker.status = HealthStatus.READY
                    log.info("discovery: worker %s is back (pod %s ready again)", redact(worker.url), wanted[key].pod)
            new = []
            for key, spec in wanted.items():
                if key in self.owned:
                    continue
                if registry.find(spec.url, WorkerRole(spec.role)) is not None:
                    if key not in self._skipped:
                        self._skipped.add(key)
                        log.info("discovery: %s (pod %s) is already a hand-added worker; left to it",
                                 redact(spec.url), spec.pod)
                    continue
                new.append(spec)
            self._skipped &= set(wanted)
            if new:
                added = await asyncio.gather(*(self._add(spec) for spec in new), return_exceptions=True)
                for spec, worker in zip(new, added):
                    if isinstance(worker, BaseException):
                        log.warning("discovery: adding %s (pod %s) failed: %r", redact(spec.url), spec.pod, worker)
                    else:
                        self.owned[spec.key] = worker
            self.metrics.discovered(len(self.serving()))

    async def _add(self, spec: WorkerSpec) -> Worker:
        worker = await self.state.add_worker(
            spec.url, model_id=spec.model_id, role=WorkerRole(spec.role), labels=spec.labels,
            bootstrap_port=spec.bootstrap_port, source="discovery",
        )
        self.metrics.registered()
        log.info("discovery: registered %s %s from pod %s (model %s)", spec.role, redact(spec.url), spec.pod,
                 worker.model_id)
        return worker

    async def _drain(self, key: tuple[str, str], worker: Worker) -> None:
        """Remove ``worker`` (already DRAINING) once nothing is in flight on it, or at the bound."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.discovery_drain_timeout_secs
        while worker.load > 0 and loop.time() < deadline:
            await asyncio.sleep(DRAIN_POLL_SECS)
        if worker.load > 0:
            log.warning("discovery: %s still has %d in flight after the drain timeout; removed", redact(worker.url),
                        worker.load)
        self._drains.pop(key, None)
        if self.owned.get(key) is worker and worker.status is HealthStatus.DRAINING:
            self.owned.pop(key)
            self.state.remove_worker(worker.id)
            self.metrics.deregistered()
            log.info("discovery: deregistered %s", redact(worker.url))
        self.metrics.discovered(len(self.serving()))

    def _cancel_drain(self, key: tuple[str, str]) -> None:
        task = self._drains.pop(key, None)
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        tasks = list(self._drains.values())
        self._drains.clear()
        await cancel_all(tasks)


async def cancel_all(tasks: list[asyncio.Task]) -> None:
    """Cancel ``tasks`` and wait until each has ended."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
