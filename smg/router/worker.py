"""A backend worker as the router sees it: address, model, role, health, load, breaker.

``load`` is the gateway-local in-flight request count (SMG's ``worker.load()``): serving
code calls :meth:`Worker.begin` before sending a request and :meth:`Worker.end` when the
response body is finished. ``load_report`` is the last backend snapshot (``/v1/loads``,
``/metrics`` or gRPC ``GetLoads``), which some policies use when it is present.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from enum import Enum

from smg.router.breaker import CircuitBreaker

__all__ = ["HealthStatus", "LoadReport", "Worker", "WorkerRole", "worker_id"]


class WorkerRole(str, Enum):
    REGULAR = "regular"
    PREFILL = "prefill"
    DECODE = "decode"


class HealthStatus(str, Enum):
    PENDING = "pending"
    READY = "ready"
    NOT_READY = "not_ready"
    FAILED = "failed"
    DRAINING = "draining"


@dataclass(frozen=True)
class LoadReport:
    """A backend load snapshot. ``token_usage`` is the KV-cache usage ratio in [0, 1]."""

    running: int = 0
    waiting: int = 0
    token_usage: float = 0.0
    waiting_uncached_tokens: int = 0
    gen_throughput: float = 0.0


def worker_id(url: str, role: WorkerRole = WorkerRole.REGULAR) -> str:
    """The stable id of the worker at ``url`` with ``role``: 16 hex digits, URL-path safe."""
    return hashlib.blake2b(f"{WorkerRole(role).value}|{url}".encode(), digest_size=8).hexdigest()


StatusListener = Callable[["Worker", HealthStatus], None]


class Worker:
    """One backend. Identity is ``(url, role)``; everything else is mutable state."""

    __slots__ = ("id", "url", "model_id", "role", "labels", "bootstrap_port", "breaker",
                 "source", "_status", "load", "processed", "load_report", "_status_listeners", "__weakref__")

    def __init__(
        self,
        url: str,
        *,
        model_id: str | None = None,
        role: WorkerRole = WorkerRole.REGULAR,
        labels: Mapping[str, str] | None = None,
        bootstrap_port: int | None = None,
        breaker: CircuitBreaker | None = None,
        status: HealthStatus = HealthStatus.READY,
        source: str = "static",
    ) -> None:
        if not url:
            raise ValueError("a worker needs a url")
        self.url = url.rstrip("/")
        self.role = WorkerRole(role)
        self.id = worker_id(self.url, self.role)
        self.model_id = model_id or None
        self.labels = dict(labels or {})
        self.bootstrap_port = bootstrap_port
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self.source = source  # who added it: static (start-up flags), api (POST /workers), discovery
        self._status = HealthStatus(status)
        self.load = 0
        self.processed = 0
        self.load_report: LoadReport | None = None
        self._status_listeners: list[StatusListener] = []

    @property
    def status(self) -> HealthStatus:
        return self._status

    @status.setter
    def status(self, value: HealthStatus) -> None:
        value = HealthStatus(value)
        if value is self._status:
            return
        old, self._status = self._status, value
        for listener in list(self._status_listeners):
            listener(self, old)

    def add_status_listener(self, listener: StatusListener) -> None:
        """Call ``listener(worker, old_status)`` whenever :attr:`status` changes."""
        self._status_listeners.append(listener)

    def remove_status_listener(self, listener: StatusListener) -> None:
        if listener in self._status_listeners:
            self._status_listeners.remove(listener)

    def serves(self, model: str | None) -> bool:
        """Does this worker serve ``model``? A worker without a model id serves any."""
        return model is None or self.model_id is None or self.model_id == model

    def is_available(self) -> bool:
        """Selectable now: status READY and the circuit breaker lets requests through."""
        return self._status is HealthStatus.READY and self.breaker.allow()

    def begin(self) -> None:
        """A request was dispatched to this worker."""
        self.load += 1
        self.processed += 1

    def end(self, success: bool | None) -> None:
        """The request's response finished; ``success`` None means "not the worker's fault"."""
        if self.load > 0:
            self.load -= 1
        if success is True:
            self.breaker.record_success()
        elif success is False:
            self.breaker.record_failure()

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "url": self.url,
            "model_id": self.model_id,
            "role": self.role.value,
            "labels": dict(self.labels),
            "bootstrap_port": self.bootstrap_port,
            "status": self._status.value,
            "source": self.source,
            "healthy": self.is_available(),
            "load": self.load,
            "processed": self.processed,
            "circuit_breaker": self.breaker.to_dict(),
            "load_report": asdict(self.load_report) if self.load_report is not None else None,
        }

    def __repr__(self) -> str:
        return f"Worker({self.url!r}, role={self.role.value}, status={self._status.value}, load={self.load})"
