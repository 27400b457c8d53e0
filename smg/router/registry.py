"""The set of known workers, with an available-per-model view and change events.

Subscribers get ``callback(event, worker)`` with event ``"added"``, ``"removed"`` or
``"status"`` (the worker's health status changed; ``worker.status`` is the new one).
Callbacks run synchronously in the caller of the change; an exception in one is logged
and does not stop the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from smg.router.worker import HealthStatus, Worker, WorkerRole

__all__ = ["RegistryEvent", "WorkerRegistry"]

log = logging.getLogger(__name__)

RegistryEvent = str  # "added" | "removed" | "status"
Subscriber = Callable[[RegistryEvent, Worker], None]


class WorkerRegistry:
    """Workers by id, in registration order."""

    def __init__(self, workers: list[Worker] | None = None) -> None:
        self._workers: dict[str, Worker] = {}
        self._subscribers: list[Subscriber] = []
        for worker in workers or ():
            self.add(worker)

    def add(self, worker: Worker) -> Worker:
        """Register ``worker``; one with the same id is replaced (keeping its position)."""
        old = self._workers.get(worker.id)
        if old is not None and old is not worker:
            old.remove_status_listener(self._on_status)
        self._workers[worker.id] = worker
        if old is not worker:
            worker.add_status_listener(self._on_status)
        self._emit("added", worker)
        return worker

    def remove(self, worker_id: str) -> Worker | None:
        worker = self._workers.pop(worker_id, None)
        if worker is not None:
            worker.remove_status_listener(self._on_status)
            self._emit("removed", worker)
        return worker

    def get(self, worker_id: str) -> Worker | None:
        return self._workers.get(worker_id)

    def find(self, url: str, role: WorkerRole | None = None) -> Worker | None:
        """The worker at ``url`` (with ``role`` if given), or None."""
        url = url.rstrip("/")
        for worker in self._workers.values():
            if worker.url == url and (role is None or worker.role == role):
                return worker
        return None

    def all(self) -> list[Worker]:
        return list(self._workers.values())

    def available(self, model: str | None = None, role: WorkerRole | None = None) -> list[Worker]:
        """Workers that may take a request now: READY, breaker closed/half-open, serving ``model``."""
        return [
            w
            for w in self._workers.values()
            if w.is_available() and w.serves(model) and (role is None or w.role == role)
        ]

    def models(self) -> list[str]:
        """Model ids served by registered (not failed) workers, sorted."""
        return sorted(
            {w.model_id for w in self._workers.values() if w.model_id and w.status is not HealthStatus.FAILED}
        )

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event, worker)`` on every change; returns an unsubscribe function."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def __len__(self) -> int:
        return len(self._workers)

    def __contains__(self, worker_id: object) -> bool:
        return worker_id in self._workers

    def __iter__(self):
        return iter(list(self._workers.values()))

    def _on_status(self, worker: Worker, old: HealthStatus) -> None:
        self._emit("status", worker)

    def _emit(self, event: RegistryEvent, worker: Worker) -> None:
        for callback in list(self._subscribers):
            try:
                callback(event, worker)
            except Exception:  # a broken subscriber must not break routing
                log.exception("worker registry subscriber failed on %s %s", event, worker.url)
