"""The policy interface: pick one worker for a request from the available candidates."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar

from smg.router.worker import LoadReport, Worker

__all__ = ["Policy", "RequestInfo", "least_loaded", "routing_key"]

_EMPTY: Mapping[str, str] = MappingProxyType({})

ROUTING_KEY_HEADER = "x-smg-routing-key"
TARGET_WORKER_HEADER = "x-smg-target-worker"
IMPLICIT_KEY_HEADERS = ("authorization", "x-forwarded-for", "cookie")


@dataclass(frozen=True)
class RequestInfo:
    """What a policy may look at. ``headers`` names are lower-case.

    ``text`` is the routing text: for chat, the text of *all* messages joined by " "
    (so a follow-up turn extends the previous turn's key); for completions the prompt;
    for /generate the text. ``token_ids`` are set on the gRPC path. ``user`` is the
    OpenAI ``user`` / session id field.
    """

    text: str | None = None
    token_ids: Sequence[int] | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    model: str | None = None
    user: str | None = None


def routing_key(request: RequestInfo) -> str | None:
    """An explicit session key: the ``x-smg-routing-key`` header, else the ``user`` field."""
    key = request.headers.get(ROUTING_KEY_HEADER)
    if key:
        return key
    return request.user or None


def least_loaded(workers: Sequence[Worker]) -> Worker:
    """The worker with the fewest in-flight requests; ties go to fewer processed, then order."""
    best = workers[0]
    best_key = (best.load, best.processed)
    for w in workers[1:]:
        key = (w.load, w.processed)
        if key < best_key:
            best, best_key = w, key
    return best


class Policy(ABC):
    """A routing policy. ``select`` receives only available candidates (READY, breaker allows).

    Policies are used from one event loop; they need no locks. Hooks default to no-ops.
    """

    name: ClassVar[str] = ""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng if rng is not None else random.Random()

    @abstractmethod
    def select(self, workers: Sequence[Worker], request: RequestInfo) -> Worker | None:
        """Pick a worker from ``workers`` for ``request``, or None to refuse."""

    def on_complete(self, worker: Worker, request: RequestInfo, success: bool) -> None:
        """The request routed to ``worker`` finished."""

    def on_load_report(self, worker: Worker, report: LoadReport) -> None:
        """A backend load snapshot arrived (``worker.load_report`` is already set)."""

    def on_worker_removed(self, worker: Worker) -> None:
        """``worker`` left the registry; drop any state about it."""

    def maintenance(self) -> None:
        """Periodic work (cache_aware eviction); the server calls it every eviction interval."""

    def reset(self) -> None:
        """Forget learned state, e.g. after the workers' caches were flushed (/flush_cache)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
