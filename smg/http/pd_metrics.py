"""Prometheus metrics of PD requests, per leg (``leg`` = ``prefill`` | ``decode``).

- ``smg_pd_requests_total{transport,style}``: PD requests by transport and handshake style;
- ``smg_pd_leg_queue_seconds{leg}``: dispatch of a leg to its response head (HTTP) or
  first message (gRPC): the time the leg spent queued and prefilling on its worker;
- ``smg_pd_leg_ttft_seconds{leg}``: dispatch of a leg to its first token (the prefill
  leg's one token; for decode, SMG's ``smg_pd_ttft_seconds``);
- ``smg_pd_prefill_duration_seconds``: dispatch to the end of the prefill leg;
- ``smg_pd_leg_failures_total{leg,kind}``: a leg that failed (kind: connect, timeout,
  status_<code>, stream, grpc);
- ``smg_pd_bootstrap_failures_total``: decode legs that found no matching prefill;
- ``smg_pd_pair_retries_total``: requests sent again to a new pair.

The collectors go into the gateway's registry when given one (so ``/metrics`` shows
them), else into a private registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["PDMetrics"]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class PDMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self._requests = Counter(
            "smg_pd_requests_total", "PD requests", ["transport", "style"], registry=r
        )
        self._queue = Histogram(
            "smg_pd_leg_queue_seconds", "leg dispatch to its response head / first message",
            ["leg"], buckets=_BUCKETS, registry=r,
        )
        self._ttft = Histogram(
            "smg_pd_leg_ttft_seconds", "leg dispatch to its first token", ["leg"], buckets=_BUCKETS, registry=r
        )
        self._prefill = Histogram(
            "smg_pd_prefill_duration_seconds", "prefill leg dispatch to its end", buckets=_BUCKETS, registry=r
        )
        self._failures = Counter(
            "smg_pd_leg_failures_total", "failed PD legs", ["leg", "kind"], registry=r
        )
        self._bootstrap = Counter(
            "smg_pd_bootstrap_failures_total", "decode legs without a matching prefill", registry=r
        )
        self._retries = Counter("smg_pd_pair_retries_total", "PD requests retried on a new pair", registry=r)
        # label lookups are not free: cache the children the hot path uses
        self._queue_leg = {leg: self._queue.labels(leg) for leg in ("prefill", "decode")}
        self._ttft_leg = {leg: self._ttft.labels(leg) for leg in ("prefill", "decode")}

    def request(self, transport: str, style: str) -> None:
        self._requests.labels(transport, style).inc()

    def queued(self, leg: str, seconds: float) -> None:
        self._queue_leg[leg].observe(seconds)

    def first_token(self, leg: str, seconds: float) -> None:
        self._ttft_leg[leg].observe(seconds)

    def prefill_done(self, seconds: float) -> None:
        self._prefill.observe(seconds)

    def leg_failed(self, leg: str, kind: str) -> None:
        self._failures.labels(leg, kind).inc()

    def bootstrap_failed(self) -> None:
        self._bootstrap.inc()

    def retried(self) -> None:
        self._retries.inc()
