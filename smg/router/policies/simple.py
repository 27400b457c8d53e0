"""Load-oblivious and load-only policies: random, round_robin, power_of_two, least_load."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

from smg.router.policies.base import Policy, RequestInfo, least_loaded
from smg.router.worker import LoadReport, Worker

__all__ = ["LeastLoadPolicy", "PowerOfTwoPolicy", "RandomPolicy", "RoundRobinPolicy"]


class RandomPolicy(Policy):
    """Uniform over the available workers."""

    name = "random"

    def select(self, workers: Sequence[Worker], request: RequestInfo) -> Worker | None:
        if not workers:
            return None
        return workers[self.rng.randrange(len(workers))]


class RoundRobinPolicy(Policy):
    """A counter modulo the number of available workers."""

    name = "round_robin"

    def __init__(self, rng: random.Random | None = None) -> None:
        super().__init__(rng)
        self._counter = itertools.count()

    def select(self, workers: Sequence[Worker], request: RequestInfo) -> Worker | None:
        if not workers:
            return None
        return workers[next(self._counter) % len(workers)]


class PowerOfTwoPolicy(Policy):
    """Two distinct random workers; the less loaded wins (ties go to the first pick).

    Compares KV-cache usage when both have a backend load report, else the local
    in-flight counts (SMG semantics).
    """

    name = "power_of_two"

    def select(self, workers: Sequence[Worker], request: RequestInfo) -> Worker | None:
        n = len(workers)
        if n <= 1:
            return workers[0] if n else None
        i = self.rng.randrange(n)
        j = self.rng.randrange(n - 1)
        if j >= i:
            j += 1
        a, b = workers[i], workers[j]
        ra, rb = a.load_report, b.load_report
        if ra is not None and rb is not None:
            return b if rb.token_usage < ra.token_usage else a
        return b if b.load < a.load else a


class LeastLoadPolicy(Policy):
    """The worker with the smallest estimated time to drain its queue (SMG ``least_load``).

    cost = (queued uncached tokens + tokens dispatched since the last report) / throughput
    + ``KV_PRESSURE_WEIGHT`` * k / (1 - k), k = KV usage. A worker without a report (while
    peers have one) gets its in-flight count converted to a drain time. With no reports at
    all this is join-shortest-queue on the local in-flight count.
    """

    name = "least_load"
    KV_PRESSURE_WEIGHT = 0.15  # seconds
    MEAN_PREFILL_TOKENS = 1024
    DEFAULT_THROUGHPUT = 2000.0  # tokens/s

    def __init__(self, rng: random.Random | None = None) -> None:
        super().__init__(rng)
        self._dispatched: dict[str, int] = {}  # worker id -> tokens sent since its last report

    def select(self, workers: Sequence[Worker], request: RequestInfo) -> Worker | None:
        if not workers:
            return None
        if all(w.load_report is None for w in workers):
            chosen = least_loaded(workers)
        else:
            chosen = self._cheapest(workers)
        tokens = len(request.token_ids) if request.token_ids is not None else self.MEAN_PREFILL_TOKENS
        self._dispatched[chosen.id] = self._dispatched.get(chosen.id, 0) + tokens
        return chosen

    def _cheapest(self, workers: Sequence[Worker]) -> Worker:
        # One plain loop: this runs per request over every candidate.
        dispatched = self._dispatched
        per_request = self.MEAN_PREFILL_TOKENS / self.DEFAULT_THROUGHPUT
        best: Worker = workers[0]
        best_key: tuple[float, int, int] | None = None
        for w in workers:
            report = w.load_report
            if report is None:
                cost = w.load * per_request
            else:
                throughput = report.gen_throughput if report.gen_throughput > 0 else self.DEFAULT_THROUGHPUT
                k = report.token_usage
                k = 0.0 if k < 0.0 else (0.99 if k > 0.99 else k)
                cost = (report.waiting_uncached_tokens + dispatched.get(w.id, 0)) / throughput
                cost += self.KV_PRESSURE_WEIGHT * k / (1.0 - k)
            key = (cost, w.load, w.processed)
            if best_key is None or key < best_key:
                best, best_key = w, key
        return best

    def on_load_report(self, worker: Worker, report: LoadReport) -> None:
        self._dispatched.pop(worker.id, None)

    def on_worker_removed(self, worker: Worker) -> None:
        self._dispatched.pop(worker.id, None)
