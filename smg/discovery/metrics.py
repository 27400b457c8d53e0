"""``smg_discovery_*`` metrics (the Rust gateway's names), on the app's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["DiscoveryMetrics"]


class DiscoveryMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registrations = Counter(
            "smg_discovery_registrations_total", "workers registered by service discovery", registry=registry
        )
        self._deregistrations = Counter(
            "smg_discovery_deregistrations_total", "discovered workers removed (after draining)", registry=registry
        )
        self._sync = Histogram(
            "smg_discovery_sync_duration_seconds", "a full pod list and its reconcile",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=registry,
        )
        self._discovered = Gauge(
            "smg_discovery_workers_discovered", "discovered workers taking traffic (not draining)", registry=registry
        )

    def registered(self) -> None:
        self._registrations.inc()

    def deregistered(self) -> None:
        self._deregistrations.inc()

    def synced(self, seconds: float) -> None:
        self._sync.observe(seconds)

    def discovered(self, count: int) -> None:
        self._discovered.set(count)
