"""smg.router: the routing library (no HTTP, no gRPC in it).

Usable on its own in any asyncio server: keep workers in a :class:`WorkerRegistry`,
pick one per request with a :class:`Router` and a policy from :func:`create_policy`,
and report outcomes (``worker.begin()`` / ``worker.end(success)``) so load counts,
circuit breakers and cache-aware trees stay current. See ``examples/embed_router.py``.
"""

from __future__ import annotations

from smg.router.breaker import BreakerConfig, BreakerState, CircuitBreaker
from smg.router.health import HealthChecker, HealthConfig, next_status
from smg.router.policies import (
    CacheAwarePolicy,
    ConsistentHashPolicy,
    HashRing,
    LeastLoadPolicy,
    Policy,
    PolicyConfig,
    PowerOfTwoPolicy,
    PrefixHashPolicy,
    RandomPolicy,
    RequestInfo,
    RoundRobinPolicy,
    create_policy,
    policy_names,
    register_policy,
)
from smg.router.registry import WorkerRegistry
from smg.router.retry import RETRYABLE_STATUS, RetryConfig, is_retryable
from smg.router.router import Router
from smg.router.worker import HealthStatus, LoadReport, Worker, WorkerRole, worker_id

__all__ = [
    "RETRYABLE_STATUS",
    "BreakerConfig",
    "BreakerState",
    "CacheAwarePolicy",
    "CircuitBreaker",
    "ConsistentHashPolicy",
    "HashRing",
    "HealthChecker",
    "HealthConfig",
    "HealthStatus",
    "LeastLoadPolicy",
    "LoadReport",
    "Policy",
    "PolicyConfig",
    "PowerOfTwoPolicy",
    "PrefixHashPolicy",
    "RandomPolicy",
    "RequestInfo",
    "RetryConfig",
    "RoundRobinPolicy",
    "Router",
    "Worker",
    "WorkerRegistry",
    "WorkerRole",
    "create_policy",
    "is_retryable",
    "next_status",
    "policy_names",
    "register_policy",
    "worker_id",
]
