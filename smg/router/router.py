"""Router: the one-call facade serving code uses (registry + policies + retry settings).

    router = Router(registry, create_policy("cache_aware"))
    worker = router.select(RequestInfo(text=..., model=...), exclude=tried_ids)
    worker.begin(); ...; worker.end(success); router.on_complete(worker, request, success)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Mapping

from smg.router.policies.base import Policy, RequestInfo
from smg.router.registry import WorkerRegistry
from smg.router.retry import RetryConfig
from smg.router.worker import LoadReport, Worker, WorkerRole

__all__ = ["Router"]

log = logging.getLogger(__name__)


class Router:
    """Picks a worker per request with the policy for the request's model."""

    def __init__(
        self,
        registry: WorkerRegistry,
        policy: Policy,
        *,
        retry: RetryConfig = RetryConfig(),
        policies_by_model: Mapping[str, Policy] | None = None,
    ) -> None:
        self.registry = registry
        self.policy = policy
        self.retry = retry
        self.policies_by_model = dict(policies_by_model or {})
        self._maintenance_task: asyncio.Task | None = None
        self._unsubscribe = registry.subscribe(self._on_registry)

    def policy_for(self, model: str | None) -> Policy:
        if model is not None and self.policies_by_model:
            return self.policies_by_model.get(model, self.policy)
        return self.policy

    def policies(self) -> list[Policy]:
        """Every distinct policy in use (the default one first)."""
        seen: dict[int, Policy] = {id(self.policy): self.policy}
        for p in self.policies_by_model.values():
            seen.setdefault(id(p), p)
        return list(seen.values())

    def select(
        self, request: RequestInfo, exclude: Collection[str] = (), role: WorkerRole | None = None,
        *, retry_tried: bool = True,
    ) -> Worker | None:
        """A worker for ``request`` among available ones, skipping ids in ``exclude``.

        When every available worker was already tried, they are all candidates again (a
        retry on a tried worker beats failing the request) unless ``retry_tried`` is
        False (the gateway's retries: a worker that failed a request is not asked again,
        so a request counts at most once against each worker's breaker). None: no
        available worker serves the model (or the policy refused, e.g. an out-of-range
        target header), or, without ``retry_tried``, every one was tried.
        """
        candidates = self.registry.available(request.model, role)
        if exclude and candidates:
            fresh = [w for w in candidates if w.id not in exclude]
            if fresh or not retry_tried:
                candidates = fresh
        if not candidates:
            return None
        return self.policy_for(request.model).select(candidates, request)

    def on_complete(self, worker: Worker, request: RequestInfo, success: bool) -> None:
        self.policy_for(request.model).on_complete(worker, request, success)

    def on_load_report(self, worker: Worker, report: LoadReport) -> None:
        """Store a backend load snapshot on ``worker`` and tell every policy."""
        worker.load_report = report
        for p in self.policies():
            p.on_load_report(worker, report)

    def maintenance(self) -> None:
        for p in self.policies():
            p.maintenance()

    def reset(self) -> None:
        """Tell every policy to forget learned state (after /flush_cache)."""
        for p in self.policies():
            p.reset()

    def start_maintenance(self, interval_secs: float) -> None:
        """Call :meth:`maintenance` every ``interval_secs`` in a background task (0: never)."""
        if interval_secs <= 0 or self._maintenance_task is not None:
            return
        self._maintenance_task = asyncio.get_running_loop().create_task(
            self._maintain(interval_secs), name="smg-router-maintenance"
        )

    async def stop(self) -> None:
        task, self._maintenance_task = self._maintenance_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def close(self) -> None:
        """Stop listening to the registry."""
        self._unsubscribe()

    async def _maintain(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                self.maintenance()
            except Exception:
                log.exception("router maintenance failed")

    def _on_registry(self, event: str, worker: Worker) -> None:
        if event == "removed":
            for p in self.policies():
                p.on_worker_removed(worker)
