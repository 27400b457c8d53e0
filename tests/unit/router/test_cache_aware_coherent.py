"""With ``prefix_tiebreak`` (on by itself under ``smg serve --workers N``) cache_aware must
agree across processes: two policy instances (two processes' routing state), each seeing
only some turns of each conversation and their workers listed in different orders, still
send every turn where the first went. Without it they disagree."""

from __future__ import annotations

import random

import smg.router.policies as policies
from smg.router import RequestInfo, Worker


def _agreement(tiebreak: bool) -> tuple[int, int, set[str]]:
    config = policies.PolicyConfig(prefix_tiebreak=tiebreak)
    a, b = (policies.create_policy("cache_aware", config) for _ in range(2))
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
    return agreed, total, set(first.values())


def test_processes_agree_on_the_worker_of_each_conversation() -> None:
    agreed, total, used = _agreement(True)
    assert total == 90 and agreed == total
    assert len(used) > 1  # conversations still spread over the workers


def test_without_the_tiebreak_processes_disagree() -> None:
    agreed, total, _ = _agreement(False)
    assert agreed < total
