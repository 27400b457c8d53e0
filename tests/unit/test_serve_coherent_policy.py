"""With ``--workers N`` cache_aware must agree across processes: two policy instances
(two processes' routing state), each seeing only some turns of each conversation and
their workers listed in different orders, still send every turn where the first went."""

from __future__ import annotations

import random

import smg.router.policies as policies
from smg.router import RequestInfo, Worker
from smg.serve import _coherent_cache_aware


def test_processes_agree_on_the_worker_of_each_conversation(monkeypatch) -> None:
    monkeypatch.setitem(policies._FACTORIES, "cache_aware", policies._FACTORIES["cache_aware"])
    _coherent_cache_aware()
    a, b = (policies.create_policy("cache_aware", policies.PolicyConfig()) for _ in range(2))
    workers = [Worker(f"grpc://127.0.0.1:{port}") for port in (5001, 5002, 5003)]
    rnd = random.Random(7)
    conversations = {c: [rnd.randrange(1000, 60000) for _ in range(200)] for c in range(30)}
    first: dict[int, str] = {}
    agreed = total = 0
    for _turn in range(4):
        for c, tokens in conversations.items():
            tokens += [rnd.randrange(1000, 60000) for _ in range(24)]
            policy, order = (a, workers) if rnd.random() < 0.5 else (b, workers[::-1])
            url = policy.select(order, RequestInfo(token_ids=list(tokens))).url
            if c in first:
                total += 1
                agreed += url == first[c]
            first.setdefault(c, url)
    assert total == 90 and agreed == total
    assert len(set(first.values())) > 1  # conversations still spread over the workers
