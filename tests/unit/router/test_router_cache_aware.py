"""cache_aware: prefix affinity, spreading, rebalancing, no death spiral, multi-turn, eviction."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from _router_testlib import SYSTEM_PROMPTS, chat_prompts, make_workers

from smg.router import CacheAwarePolicy, LoadReport, PolicyConfig, RequestInfo


@pytest.fixture
def make_policy():
    def make(seed=7, **kw):
        return CacheAwarePolicy(PolicyConfig(**kw), random.Random(seed))

    return make


DOC = " ".join(f"Paragraph {i}: the quarterly report lists revenue, costs and risks." for i in range(30))


def test_repeated_prefix_goes_to_same_worker(make_policy):
    workers = make_workers(4)
    ca = make_policy()
    questions = chat_prompts(40, seed=2)
    chosen = [ca.select(workers, RequestInfo(text=f"{DOC} Question: {q}")) for q in questions]
    assert len({w.url for w in chosen}) == 1
    assert ca.stats["hit"] == 39


def test_distinct_prompts_spread(make_policy):
    workers = make_workers(4)
    ca = make_policy()
    rng = random.Random(1)
    texts = ["".join(rng.choice("abcdefghij ") for _ in range(200)) for _ in range(400)]
    got = Counter(ca.select(workers, RequestInfo(text=t)).url for t in texts)
    assert all(got[w.url] >= 60 for w in workers), got


def test_no_death_spiral_misses_spread_when_loads_equal(make_policy):
    # every worker equally busy, nothing dispatched yet: SMG's fixed (load, processed,
    # index) tie-break sends every one of these misses to the first worker
    workers = make_workers(4)
    for w in workers:
        w.load = 12
    ca = make_policy()
    texts = chat_prompts(300, seed=4)
    got = Counter(ca.select(workers, RequestInfo(text=f"{i} {t}")).url for i, t in enumerate(texts))
    assert all(got[w.url] >= 45 for w in workers), got


def test_misses_stay_on_least_loaded_band(make_policy):
    workers = make_workers(4)
    for w, load in zip(workers, [3, 3, 4, 9]):
        w.load = load
    ca = make_policy(miss_load_slack=1)
    got = Counter(ca.select(workers, RequestInfo(text=f"{i} {t}")).url for i, t in enumerate(chat_prompts(200)))
    assert got[workers[3].url] == 0  # far above the band
    assert got[workers[2].url] == 0  # in the band but more loaded; nothing partially matched
    assert got[workers[0].url] > 60 and got[workers[1].url] > 60


def test_dynamic_stream_of_misses_balances(make_policy):
    """Requests arrive and complete; cache misses must not pile onto one worker."""
    rng = random.Random(9)
    workers = make_workers(4)
    ca = make_policy()
    inflight: list = []
    sent = Counter()
    for i, text in enumerate(chat_prompts(600, seed=11)):
        w = ca.select(workers, RequestInfo(text=f"{i} {text}"))
        w.begin()
        sent[w.url] += 1
        inflight.append(w)
        rng.shuffle(inflight)
        while len(inflight) > 16:
            inflight.pop().end(True)
    shares = [sent[w.url] / 600 for w in workers]
    assert max(shares) < 0.35 and min(shares) > 0.15, shares


def test_rebalances_under_imbalance(make_policy):
    workers = make_workers(3)
    ca = make_policy()
    holder = ca.select(workers, RequestInfo(text=DOC))
    holder.load = 50  # gap 50 <= abs threshold 64: still balanced, affinity wins
    assert ca.select(workers, RequestInfo(text=DOC + " again")) is holder
    holder.load = 100  # gap 100 > 64 and 100 > 0 * 1.5: imbalanced
    other = ca.select(workers, RequestInfo(text=DOC + " once more"))
    assert other is not holder and other.load == 0
    assert ca.stats["imbalanced"] == 1
    # the relative threshold matters too: 220 vs 150 is a gap of 70 but not 1.5x
    ca = make_policy()
    for w in workers:
        w.load = 150
    holder = ca.select(workers, RequestInfo(text=DOC))
    holder.load = 220
    assert ca.select(workers, RequestInfo(text=DOC + " 4")) is holder


def test_kv_usage_thresholds_trigger_rebalance(make_policy):
    workers = make_workers(2)
    ca = make_policy(overload_token_usage_threshold=0.9)
    holder = ca.select(workers, RequestInfo(text=DOC))
    other = workers[1] if holder is workers[0] else workers[0]
    holder.load_report = LoadReport(token_usage=0.95)
    other.load_report = LoadReport(token_usage=0.2)
    assert ca.select(workers, RequestInfo(text=DOC + "?")) is other
    ca2 = make_policy()  # thresholds at 1.0: disabled, as in SMG
    h2 = ca2.select(workers, RequestInfo(text=DOC))
    h2.load_report = LoadReport(token_usage=0.99)
    assert ca2.select(workers, RequestInfo(text=DOC + "?")) is h2


def test_hit_prefers_longest_match(make_policy):
    workers = make_workers(3)
    ca = make_policy()
    tree = ca.tree(None)
    tree.insert(DOC[:600], workers[0].url)
    tree.insert(DOC[:1500], workers[1].url)
    assert ca.select(workers, RequestInfo(text=DOC + " tail")) is workers[1]


def _conversation(rng: random.Random, idx: int):
    """Routing texts of one chat's turns: all messages so far, joined by spaces."""
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda".split()
    opening = f"Ticket {idx}: " + " ".join(rng.choice(words) for _ in range(40))
    messages = [SYSTEM_PROMPTS[idx % len(SYSTEM_PROMPTS)], opening]
    for _ in range(4):
        yield " ".join(messages)
        reply = " ".join(rng.choice(words) for _ in range(rng.randint(60, 160)))
        messages += [reply, f"Thanks. Follow-up {rng.randrange(1000)}: why?"]


def test_multi_turn_follow_ups_stick(make_policy):
    """Interleaved conversations with requests in flight: every follow-up finds its worker.

    Replies make each turn several times longer than the last, so the match ratio of a
    follow-up falls under the cache threshold: only continuation detection keeps it.
    """
    rng = random.Random(5)
    workers = make_workers(4)
    ca = make_policy()
    convs = [_conversation(rng, i) for i in range(24)]
    first: dict[int, str] = {}
    inflight: list = []
    follow_ups = 0
    for _turn in range(4):
        for i, conv in enumerate(convs):
            text = next(conv)
            w = ca.select(workers, RequestInfo(text=text))
            w.begin()
            inflight.append(w)
            rng.shuffle(inflight)
            while len(inflight) > 6:
                inflight.pop().end(True)
            if i in first:
                assert w.url == first[i], f"conversation {i} moved"
                follow_ups += 1
            else:
                first[i] = w.url
    assert follow_ups == 72
    assert ca.stats["continuation"] > 0
    assert len(set(first.values())) >= 3  # the conversations themselves spread


def test_session_key_sticks_without_shared_prefix(make_policy):
    workers = make_workers(4)
    ca = make_policy()
    texts = chat_prompts(30, seed=8)
    for key in ("alice", "bob"):
        by_user = {ca.select(workers, RequestInfo(text=t, user=key)).url for t in texts}
        by_header = {
            ca.select(workers, RequestInfo(text=t + "!", headers={"x-smg-routing-key": key + "-h"})).url
            for t in texts
        }
        assert len(by_user) == 1 and len(by_header) == 1


def test_token_keys_are_page_aligned(make_policy):
    workers = make_workers(4)
    ca = make_policy()
    rng = random.Random(2)
    shared = [rng.randrange(150_000) for _ in range(160)]
    reqs = [RequestInfo(token_ids=shared + [rng.randrange(150_000) for _ in range(40)]) for _ in range(20)]
    assert len({ca.select(workers, r).url for r in reqs}) == 1
    tree = ca.tree(None, "tokens")
    sizes = [tree.tenant_size(w.url) for w in workers]
    assert max(sizes) % 16 == 0 and max(sizes) >= 160
    # under one page: nothing to match, nothing inserted
    short = make_policy()
    for _ in range(10):
        short.select(workers, RequestInfo(token_ids=[1, 2, 3] * 5))
    t2 = short.tree(None, "tokens")
    assert all(t2.tenant_size(w.url) == 0 for w in workers)


def test_trees_are_per_model(make_policy):
    workers = make_workers(4)
    ca = make_policy()
    a = {ca.select(workers, RequestInfo(text=DOC + str(i), model="a")).url for i in range(5)}
    assert len(a) == 1
    assert ca.tree("b").tenant_size(next(iter(a))) == 0
    assert set(ca.trees()) == {("a", "text"), ("b", "text")}


def test_eviction_keeps_each_worker_under_budget(make_policy):
    workers = make_workers(3)
    ca = make_policy(max_tree_size=2000)
    texts = chat_prompts(300, seed=3)
    for i, t in enumerate(texts):
        ca.select(workers, RequestInfo(text=f"{i:04d} {t}"))
    tree = ca.tree(None)
    assert max(tree.tenant_size(w.url) for w in workers) > 2000
    ca.maintenance()
    assert all(0 < tree.tenant_size(w.url) <= 2000 for w in workers)
    assert ca.evicted > 0
    # the most recent prompt survived eviction (LRU) and still routes to its worker
    recent = f"{len(texts) - 1:04d} {texts[-1]}"
    holder = max(workers, key=lambda w: tree.match_tenants(recent)[1].get(w.url, 0))
    assert ca.select(workers, RequestInfo(text=recent)) is holder


def test_removed_worker_is_dropped_from_trees_and_sessions(make_policy):
    workers = make_workers(3)
    ca = make_policy()
    holder = ca.select(workers, RequestInfo(text=DOC, user="u"))
    ca.on_worker_removed(holder)
    assert ca.tree(None).tenant_size(holder.url) == 0
    rest = [w for w in workers if w is not holder]
    assert ca.select(rest, RequestInfo(text=DOC, user="u")) in rest


def test_reset_forgets_prefixes(make_policy):
    workers = make_workers(2)
    ca = make_policy()
    holder = ca.select(workers, RequestInfo(text=DOC))
    holder.load = 1  # the other worker is now the least loaded
    assert ca.select(workers, RequestInfo(text=DOC)) is holder
    ca.reset()
    assert ca.select(workers, RequestInfo(text=DOC)) is not holder


def test_no_text_and_single_worker(make_policy):
    workers = make_workers(2)
    ca = make_policy()
    assert ca.select(workers, RequestInfo()) in workers
    assert ca.select([], RequestInfo(text="x")) is None
    assert ca.select(workers[:1], RequestInfo(text=DOC)) is workers[0]
    assert ca.tree(None).tenant_size(workers[0].url) > 0


def test_token_follow_up_is_a_continuation(make_policy):
    """gRPC path: a follow-up's token ids extend the previous turn's (page-aligned) key."""
    rng = random.Random(12)
    workers = make_workers(4)
    ca = make_policy()
    turns = {}
    for conv in range(8):
        ids = [rng.randrange(150_000) for _ in range(rng.randint(40, 90))]
        turns[conv] = [ids]
        for _ in range(3):
            ids = ids + [rng.randrange(150_000) for _ in range(rng.randint(300, 600))]
            turns[conv].append(ids)
    for turn in range(4):
        for conv in range(8):
            w = ca.select(workers, RequestInfo(token_ids=turns[conv][turn]))
            if turn == 0:
                turns[conv].append(w)
            else:
                assert w is turns[conv][-1], f"conversation {conv} moved at turn {turn}"
    assert ca.stats["continuation"] > 0
