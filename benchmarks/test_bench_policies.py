"""Routing policies: cost of one ``select()`` with 8 and 64 workers, as ratios to round_robin.

Workload: chat routing texts of 0.5-4 KB, each opening with one of 16 shared system
prompts; 40% continue an earlier conversation (all of its text plus a new turn). Loads
move (``begin``/``end``) as a live server's would, and every worker has a load report
(least_load and power_of_two use them). cache_aware is warmed with WARM requests first,
so its trees hold a realistic amount of text.

Run::

    python -m pytest benchmarks/test_bench_policies.py -q -s

Ratios (policy time / round_robin time, same worker count, same run) are printed at the
end ("policy select ratios") and attached to each benchmark's extra_info.
"""

from __future__ import annotations

import random

import pytest

from smg.router import LoadReport, PolicyConfig, RequestInfo, Worker, create_policy

pytest.importorskip("pytest_benchmark")

POLICIES = ("round_robin", "random", "power_of_two", "least_load", "consistent_hash", "prefix_hash", "cache_aware")
SIZES = (8, 64)
BATCH = 400
WARM = 2000
RESULTS: dict[tuple[str, int], float] = {}


def _texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = ("the a router cache worker token prefix model answer question data code function "
             "value error stream batch latency user system prompt").split()
    systems = [f"System prompt {i}: " + " ".join(rng.choice(words) for _ in range(60)) for i in range(16)]
    out: list[str] = []
    for _ in range(n):
        if out and rng.random() < 0.4:
            base = rng.choice(out[-200:])
        else:
            base = rng.choice(systems)
        out.append(base + " " + " ".join(rng.choice(words) for _ in range(rng.randint(40, 400))))
    return out


def _requests(texts: list[str], seed: int) -> list[RequestInfo]:
    rng = random.Random(seed)
    return [RequestInfo(text=t, user=f"user-{rng.randrange(500)}") for t in texts]


def _workers(n: int) -> list[Worker]:
    workers = [Worker(f"http://127.0.0.1:{20000 + i}") for i in range(n)]  # never contacted
    rng = random.Random(n)
    for w in workers:
        w.load_report = LoadReport(running=rng.randrange(20), waiting=rng.randrange(5),
                                   token_usage=rng.random() * 0.8, waiting_uncached_tokens=rng.randrange(5000),
                                   gen_throughput=1000 + rng.random() * 2000)
    return workers


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    lines = ["", "policy select ratios (time per select / round_robin, same run):"]
    for n in SIZES:
        base = RESULTS.get(("round_robin", n))
        if not base:
            continue
        row = ", ".join(f"{p} {RESULTS[(p, n)] / base:.1f}x" for p in POLICIES if (p, n) in RESULTS)
        lines.append(f"  {n} workers (round_robin {base * 1e6:.2f} us): {row}")
    print("\n".join(lines))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", POLICIES)
def test_select(benchmark, name: str, n: int) -> None:
    workers = _workers(n)
    policy = create_policy(name, PolicyConfig(seed=1))
    texts = _texts(WARM + BATCH, seed=2)
    for r in _requests(texts[:WARM], seed=3):
        policy.select(workers, r)
    batch = _requests(texts[WARM:], seed=4)
    inflight: list[Worker] = []

    def run() -> None:
        for r in batch:
            w = policy.select(workers, r)
            w.begin()
            inflight.append(w)
            if len(inflight) > 4 * n:
                inflight.pop(0).end(True)

    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    per_select = benchmark.stats.stats.median / len(batch)
    RESULTS[(name, n)] = per_select
    base = RESULTS.get(("round_robin", n))
    benchmark.extra_info["us_per_select"] = round(per_select * 1e6, 3)
    if base:
        benchmark.extra_info["ratio_to_round_robin"] = round(per_select / base, 2)
