"""Distribution of the load and hash policies on realistic request streams."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from _router_testlib import chat_prompts, make_workers

from smg.router import (
    ConsistentHashPolicy,
    LoadReport,
    Policy,
    PolicyConfig,
    RequestInfo,
    create_policy,
    policy_names,
    register_policy,
)

SEEDED = PolicyConfig(seed=1234)


def counts(policy, workers, requests):
    c = Counter()
    for r in requests:
        c[policy.select(workers, r).url] += 1
    return [c[w.url] for w in workers]


def test_round_robin_is_even():
    workers = make_workers(4)
    reqs = [RequestInfo(text=t) for t in chat_prompts(400)]
    assert counts(create_policy("round_robin"), workers, reqs) == [100] * 4


def test_random_is_roughly_uniform_and_seeded():
    workers = make_workers(4)
    reqs = [RequestInfo(text=t) for t in chat_prompts(4000)]
    got = counts(create_policy("random", SEEDED), workers, reqs)
    assert all(900 <= n <= 1100 for n in got), got
    assert got == counts(create_policy("random", SEEDED), workers, reqs)  # reproducible


def _simulate(policy, finish_prob, ticks=3000, seed=5):
    """One arrival per tick; each in-flight request on worker i finishes with finish_prob[i]."""
    rng = random.Random(seed)
    workers = make_workers(len(finish_prob))
    sent = Counter()
    for t in range(ticks):
        w = policy.select(workers, RequestInfo(text=f"req {t}"))
        w.begin()
        sent[w.url] += 1
        for i, worker in enumerate(workers):
            done = sum(rng.random() < finish_prob[i] for _ in range(worker.load))
            for _ in range(done):
                worker.end(True)
    return [sent[w.url] / ticks for w in workers], workers


def test_power_of_two_prefers_less_loaded_worker():
    # worker 0 is slow (its requests pile up); random would still send it 1/4
    shares, _ = _simulate(create_policy("power_of_two", SEEDED), [0.02, 0.3, 0.3, 0.3])
    rand_shares, _ = _simulate(create_policy("random", SEEDED), [0.02, 0.3, 0.3, 0.3])
    assert rand_shares[0] > 0.2
    assert shares[0] < 0.1, shares


def test_power_of_two_static_loads_and_kv_usage():
    workers = make_workers(4)
    for w, load in zip(workers, [0, 10, 20, 30]):
        w.load = load
    p2 = create_policy("power_of_two", SEEDED)
    got = counts(p2, workers, [RequestInfo()] * 3000)
    assert got[3] == 0 and got[0] > got[1] > got[2] > 0
    # with load reports on every worker, KV usage decides (the reverse order here)
    for w, usage in zip(workers, [0.9, 0.6, 0.3, 0.1]):
        w.load_report = LoadReport(token_usage=usage)
    got = counts(p2, workers, [RequestInfo()] * 3000)
    assert got[0] == 0 and got[3] > got[2] > got[1] > 0


def test_power_of_two_edge_sizes():
    p2 = create_policy("power_of_two")
    assert p2.select([], RequestInfo()) is None
    (only,) = make_workers(1)
    assert p2.select([only], RequestInfo()) is only


def test_least_load_picks_min_and_breaks_ties_by_processed():
    workers = make_workers(4)
    for w, load in zip(workers, [5, 2, 7, 2]):
        w.load = load
    workers[1].processed = 10
    ll = create_policy("least_load")
    assert ll.select(workers, RequestInfo()) is workers[3]
    shares, _ = _simulate(create_policy("least_load"), [0.02, 0.3, 0.3, 0.3])
    assert shares[0] < 0.1


def test_least_load_uses_queued_tokens_and_kv_pressure():
    workers = make_workers(3)
    ll = create_policy("least_load")
    reports = [
        LoadReport(waiting_uncached_tokens=50_000, gen_throughput=2000, token_usage=0.2),
        LoadReport(waiting_uncached_tokens=1_000, gen_throughput=2000, token_usage=0.95),
        LoadReport(waiting_uncached_tokens=2_000, gen_throughput=4000, token_usage=0.2),
    ]
    for w, r in zip(workers, reports):
        w.load_report = r
        ll.on_load_report(w, r)
    req = RequestInfo(token_ids=list(range(4000)))
    first = ll.select(workers, req)
    assert first is workers[2]  # short queue, fast, little KV pressure
    # tokens dispatched since the last report count against it until the next report
    picks = [ll.select(workers, req) for _ in range(20)]
    assert workers[1] in picks and workers[0] not in picks
    ll.on_load_report(workers[2], reports[2])
    assert ll.select(workers, req) is workers[2]


def _keys(n):
    return [f"session-{i:05d}" for i in range(n)]


def test_consistent_hash_sticky_by_header_user_and_implicit_headers():
    workers = make_workers(5)
    ch = create_policy("consistent_hash", SEEDED)
    for key in _keys(50):
        by_header = {ch.select(workers, RequestInfo(headers={"x-smg-routing-key": key})).url for _ in range(5)}
        by_user = {ch.select(workers, RequestInfo(user=key)).url for _ in range(5)}
        by_auth = {ch.select(workers, RequestInfo(headers={"authorization": key})).url for _ in range(5)}
        assert len(by_header) == 1 and by_header == by_user == by_auth
    # the header wins over the user field
    r = RequestInfo(headers={"x-smg-routing-key": "k1"}, user="k2")
    assert ch.select(workers, r) is ch.select(workers, RequestInfo(user="k1"))
    # keys spread over all workers, each owning a fair share of 2000 keys
    got = counts(ch, workers, [RequestInfo(user=k) for k in _keys(2000)])
    assert all(250 <= n <= 600 for n in got), got
    # without any key: random, spread
    got = counts(ch, workers, [RequestInfo(text="no key")] * 1000)
    assert all(n > 100 for n in got), got


def test_consistent_hash_target_worker_index():
    workers = make_workers(3)
    ch = create_policy("consistent_hash")  # the old name is an alias of SMG's
    assert ch.name == "consistent_hashing"
    assert ch.select(workers, RequestInfo(headers={"x-smg-target-worker": "2"})) is workers[2]
    assert ch.select(workers, RequestInfo(headers={"x-smg-target-worker": "3"})) is None
    assert ch.select(workers, RequestInfo(headers={"x-smg-target-worker": "x"})) is None


@pytest.mark.parametrize("n", [3, 5, 8])
def test_consistent_hash_departing_worker_moves_only_its_keys(n):
    workers = make_workers(n)
    ch = ConsistentHashPolicy(PolicyConfig())
    keys = _keys(2000)
    before = {k: ch.select(workers, RequestInfo(user=k)).url for k in keys}
    gone = workers[n // 2]
    rest = [w for w in workers if w is not gone]
    after = {k: ch.select(rest, RequestInfo(user=k)).url for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    assert all(before[k] == gone.url for k in moved)  # only the departed worker's keys
    assert len(moved) == sum(1 for k in keys if before[k] == gone.url)
    assert len(moved) / len(keys) < 2 / n
    # and a joining worker only takes keys, never shuffles the others
    back = {k: ch.select(workers, RequestInfo(user=k)).url for k in keys}
    assert back == before


def test_prefix_hash_groups_by_prefix_and_sheds_load():
    workers = make_workers(4)
    ph = create_policy("prefix_hash")
    rng = random.Random(3)
    shared = [rng.randrange(150_000) for _ in range(300)]
    reqs = [RequestInfo(token_ids=shared + [rng.randrange(150_000) for _ in range(50)]) for _ in range(20)]
    chosen = {ph.select(workers, r).url for r in reqs}
    assert len(chosen) == 1  # same first 256 tokens -> same worker
    distinct = [RequestInfo(token_ids=[rng.randrange(150_000) for _ in range(300)]) for _ in range(400)]
    assert all(n > 40 for n in counts(ph, workers, distinct))
    # text requests (HTTP) are keyed by their leading characters
    texts = chat_prompts(200, seed=1)
    assert all(n > 20 for n in counts(ph, workers, [RequestInfo(text=t) for t in texts]))
    same = {ph.select(workers, RequestInfo(text="x" * 2000 + t)).url for t in texts[:10]}
    assert len(same) == 1
    # an overloaded ring worker gives way to the least-loaded one
    ring_worker = next(w for w in workers if w.url in chosen)
    ring_worker.load = 40
    other = ph.select(workers, reqs[0])
    assert other is not ring_worker and other.load == 0


def test_policy_registry_builtins_custom_and_errors():
    assert {"random", "round_robin", "power_of_two", "least_load", "consistent_hashing", "prefix_hash",
            "cache_aware"} <= set(policy_names())
    for name in ("random", "round_robin", "power_of_two", "least_load", "consistent_hashing", "prefix_hash",
                 "cache_aware"):
        p = create_policy(name)
        assert isinstance(p, Policy) and p.name == name
    with pytest.raises(ValueError, match="unknown routing policy 'nope'.*round_robin"):
        create_policy("nope")

    class First(Policy):
        name = "first_test"

        def __init__(self, config):
            super().__init__()
            self.config = config

        def select(self, workers, request):
            return workers[0] if workers else None

    register_policy("first_test", First)
    p = create_policy("first_test", PolicyConfig(cache_threshold=0.9))
    assert isinstance(p, First) and p.config.cache_threshold == 0.9
    assert "first_test" in policy_names()
    register_policy("broken_test", lambda c: object())
    with pytest.raises(TypeError):
        create_policy("broken_test")
    with pytest.raises(ValueError):
        register_policy("", First)


def test_empty_candidates_give_none():
    for name in ("random", "round_robin", "power_of_two", "least_load", "consistent_hash", "prefix_hash"):
        assert create_policy(name).select([], RequestInfo(text="hi")) is None


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(min_value=2, max_value=12),
    gone=st.integers(min_value=0, max_value=11),
    keys=st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=60, unique=True),
)
def test_ring_removal_moves_only_the_removed_workers_keys(n, gone, keys):
    workers = make_workers(n)
    ch = ConsistentHashPolicy(PolicyConfig(virtual_nodes=40))
    gone_worker = workers[gone % n]
    rest = [w for w in workers if w is not gone_worker]
    for k in keys:
        before = ch.select(workers, RequestInfo(user=k))
        after = ch.select(rest, RequestInfo(user=k))
        assert after is before or before is gone_worker
