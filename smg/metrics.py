"""Prometheus metrics of one gateway app (its own registry, so several apps can coexist).

Per-request counters are looked up once per label set and cached; per-worker gauges are
read from the worker registry at scrape time, so the request path never touches them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from smg.router import Worker

__all__ = ["CONTENT_TYPE", "GatewayMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_BREAKER_STATE = {"closed": 0, "open": 1, "half_open": 2}


class _WorkerCollector(Collector):
    def __init__(self, workers: Callable[[], Iterable[Worker]]) -> None:
        self._workers = workers

    def collect(self) -> Iterator[Metric]:
        workers = list(self._workers())
        pool = GaugeMetricFamily("smg_worker_pool_size", "registered workers")
        pool.add_metric([], len(workers))
        active = GaugeMetricFamily("smg_worker_requests_active", "in-flight requests", labels=["worker"])
        healthy = GaugeMetricFamily("smg_worker_health", "1 when the worker takes traffic", labels=["worker"])
        breaker = GaugeMetricFamily(
            "smg_worker_cb_state", "circuit breaker: 0 closed, 1 open, 2 half-open", labels=["worker"]
        )
        processed = CounterMetricFamily("smg_worker_requests", "attempts sent to the worker", labels=["worker"])
        for w in workers:
            active.add_metric([w.url], w.load)
            healthy.add_metric([w.url], 1 if w.is_available() else 0)
            breaker.add_metric([w.url], _BREAKER_STATE.get(w.breaker.state, 0))
            processed.add_metric([w.url], w.processed)
        yield from (pool, active, healthy, breaker, processed)


class GatewayMetrics:
    """The counters the request path updates, and the text exposition for ``/metrics``."""

    def __init__(self, workers: Callable[[], Iterable[Worker]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "smg_http_requests_total", "requests by endpoint", ["endpoint"], registry=self.registry
        )
        self._responses = Counter(
            "smg_http_responses_total", "responses by endpoint and status",
            ["endpoint", "status_code"], registry=self.registry,
        )
        self._duration = Histogram(
            "smg_router_request_duration_seconds", "time to the end of the response body",
            ["endpoint"], registry=self.registry,
        )
        self._retries = Counter("smg_worker_retries_total", "retried attempts", registry=self.registry)
        self._exhausted = Counter(
            "smg_worker_retries_exhausted_total", "requests that ran out of attempts", registry=self.registry
        )
        self._errors = Counter(
            "smg_worker_errors_total", "failed attempts by worker and kind",
            ["worker", "kind"], registry=self.registry,
        )
        self.registry.register(_WorkerCollector(workers))
        self._cache: dict[tuple, object] = {}

    def _child(self, metric, *labels: str):
        key = (id(metric), *labels)
        child = self._cache.get(key)
        if child is None:
            child = self._cache[key] = metric.labels(*labels)
        return child

    def request(self, endpoint: str) -> None:
        self._child(self._requests, endpoint).inc()

    def response(self, endpoint: str, status: int, seconds: float) -> None:
        self._child(self._responses, endpoint, str(status)).inc()
        self._child(self._duration, endpoint).observe(seconds)

    def retry(self) -> None:
        self._retries.inc()

    def exhausted(self) -> None:
        self._exhausted.inc()

    def worker_error(self, worker: Worker, kind: str) -> None:
        self._child(self._errors, worker.url, kind).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
