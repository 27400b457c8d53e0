"""Routing policies, created by name.

Built in: ``random``, ``round_robin``, ``power_of_two``, ``least_load``,
``consistent_hashing`` (alias ``consistent_hash``), ``prefix_hash`` and ``cache_aware``.
A custom policy is a :class:`Policy` subclass registered with a factory::

    register_policy("my_policy", lambda config: MyPolicy(config))
    policy = create_policy("my_policy", PolicyConfig())
"""

from __future__ import annotations

import random
from collections.abc import Callable

from smg.router.policies.base import Policy, RequestInfo, least_loaded, routing_key
from smg.router.policies.cache_aware import CacheAwarePolicy
from smg.router.policies.config import PolicyConfig
from smg.router.policies.hashing import ConsistentHashPolicy, HashRing, PrefixHashPolicy
from smg.router.policies.simple import LeastLoadPolicy, PowerOfTwoPolicy, RandomPolicy, RoundRobinPolicy

__all__ = [
    "CacheAwarePolicy",
    "ConsistentHashPolicy",
    "HashRing",
    "LeastLoadPolicy",
    "Policy",
    "PolicyConfig",
    "PolicyFactory",
    "PowerOfTwoPolicy",
    "PrefixHashPolicy",
    "RandomPolicy",
    "RequestInfo",
    "RoundRobinPolicy",
    "create_policy",
    "least_loaded",
    "policy_names",
    "register_policy",
    "routing_key",
]

PolicyFactory = Callable[[PolicyConfig], Policy]


def _rng(config: PolicyConfig) -> random.Random:
    return random.Random(config.seed)


_FACTORIES: dict[str, PolicyFactory] = {
    "random": lambda c: RandomPolicy(_rng(c)),
    "round_robin": lambda c: RoundRobinPolicy(_rng(c)),
    "power_of_two": lambda c: PowerOfTwoPolicy(_rng(c)),
    "least_load": lambda c: LeastLoadPolicy(_rng(c)),
    "consistent_hashing": lambda c: ConsistentHashPolicy(c, _rng(c)),
    "prefix_hash": lambda c: PrefixHashPolicy(c, _rng(c)),
    "cache_aware": lambda c: CacheAwarePolicy(c, _rng(c)),
}
_ALIASES = {"consistent_hash": "consistent_hashing"}


def register_policy(name: str, factory: PolicyFactory) -> None:
    """Make ``create_policy(name, ...)`` call ``factory(config)``; replaces an earlier one."""
    if not name or not isinstance(name, str):
        raise ValueError("a policy needs a non-empty name")
    if not callable(factory):
        raise TypeError(f"policy factory for {name!r} is not callable")
    _FACTORIES[name] = factory


def policy_names() -> list[str]:
    """Registered policy names (aliases excluded), sorted."""
    return sorted(_FACTORIES)


def create_policy(name: str, config: PolicyConfig | None = None) -> Policy:
    """A new policy instance; unknown names raise ValueError listing the known ones."""
    factory = _FACTORIES.get(_ALIASES.get(name, name))
    if factory is None:
        raise ValueError(f"unknown routing policy {name!r}; choose one of: {', '.join(policy_names())}")
    policy = factory(config if config is not None else PolicyConfig())
    if not isinstance(policy, Policy):
        raise TypeError(f"policy factory for {name!r} returned {type(policy).__name__}, not a Policy")
    return policy
