"""cache_aware's global tree budget (issue 15, bounded memory): every tree and worker
together stay within ``max_tree_total`` units between two timer runs of maintenance (a
burst of huge prompts triggers it from the request path), maintenance brings the trees
under it in equal shares, and the default is sized to the machine."""

from __future__ import annotations

import random

import pytest

import smg.router.policies as policies
from smg.config import GatewayConfig
from smg.router import RequestInfo, Worker
from smg.router.policies.tree_budget import machine_memory, tree_budget

WORKERS = [Worker(f"http://127.0.0.1:{port}") for port in (5001, 5002, 5003)]


def _text(rnd: random.Random, n: int) -> str:
    return "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(n))


@pytest.mark.parametrize("kind", ["text", "tokens"])
def test_a_burst_of_large_prompts_stays_within_the_total(kind):
    total = 20_000
    policy = policies.create_policy("cache_aware", policies.PolicyConfig(max_tree_total=total, seed=1))
    assert policy.total_budget == total
    rnd = random.Random(3)
    peak = 0
    for i in range(100):  # 100 prompts of 2,000 units: ten times the budget
        if kind == "text":
            request = RequestInfo(text=_text(rnd, 2000), model="m" if i % 2 else "n")
        else:
            request = RequestInfo(token_ids=[rnd.randrange(1, 50_000) for _ in range(2000)], model="m")
        policy.select(WORKERS, request)
        peak = max(peak, policy.tree_units())
    assert peak <= total + total // 16 + 2000  # at most a sixteenth (and one prompt) over
    policy.maintenance()
    assert 0 < policy.tree_units() <= total
    assert policy.evicted >= 100 * 2000 - total - total // 16 - 2000
    names = {name: (used, bound) for name, used, bound in policy.bounds()}
    assert names["cache_aware_tree_units"] == (policy.tree_units(), total)


def test_the_per_worker_budget_still_applies():
    policy = policies.create_policy("cache_aware", policies.PolicyConfig(max_tree_size=500, max_tree_total=10**9))
    rnd = random.Random(5)
    for _ in range(10):
        policy.select(WORKERS[:1], RequestInfo(text=_text(rnd, 300)))
    policy.maintenance()
    assert policy.tree_units() <= 500


def test_the_default_total_is_sized_to_the_machine():
    memory = machine_memory()
    assert memory > 0
    assert tree_budget(memory) == int(memory * 0.05) // 4
    assert tree_budget(1) == 1 << 16  # never below a floor
    policy = policies.create_policy("cache_aware", GatewayConfig().policy_config())
    assert policy.total_budget == tree_budget()
    assert GatewayConfig.from_mapping({"max_tree_total_size": 1234}).policy_config().max_tree_total == 1234
    with pytest.raises(ValueError):
        GatewayConfig.from_mapping({"max_tree_total_size": -1})
