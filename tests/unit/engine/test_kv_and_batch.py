"""The simulation routing is measured against: prefix KV cache, events, batch queue, loads."""

from __future__ import annotations

import asyncio

from _engine_testlib import collect, request, wait_until

from smg.engine.kvcache import PrefixCache, block_hashes

BS = 16


def test_block_hashes_chain_over_full_blocks_only() -> None:
    a = list(range(40))
    b = list(range(32)) + [999] * 8
    ha, hb = block_hashes(a, BS), block_hashes(b, BS)
    assert len(ha) == 2  # 40 tokens = 2 full blocks + a partial tail
    assert ha == hb  # same first 32 tokens
    c = [7] + list(range(1, 40))
    assert block_hashes(c, BS)[1] != ha[1]  # a change in block 0 changes every later hash


def test_prefix_cache_matches_and_evicts_lru() -> None:
    cache = PrefixCache(BS, capacity_tokens=4 * BS)
    a = list(range(0, 48))  # 3 blocks
    b = list(range(1000, 1032))  # 2 blocks
    assert cache.match(a) == 0
    cache.insert(a)
    assert cache.match(a + [5, 6]) == 48
    assert cache.match(a[:20]) == 16
    cache.insert(b)  # 5 blocks > 4: the least recent goes, and it is a's leaf (chains trim from the end)
    assert cache.match(b) == 32
    assert cache.match(a) == 32
    kinds = [e.kind for e in cache.pending]
    assert kinds == ["stored", "stored", "removed"]
    stored_a = cache.pending[0]
    assert [blk.parent_hash for blk in stored_a.blocks][1:] == [
        blk.block_hash for blk in stored_a.blocks[:-1]
    ]
    assert cache.pending[2].block_hashes == (block_hashes(a, BS)[2],)


async def test_a_repeated_prefix_becomes_cached_tokens(make_engine, tokenizer) -> None:
    engine = await make_engine()
    system = tokenizer.encode("You are a terse assistant who answers in one line. " * 4)
    first = system + tokenizer.encode("What is a fox?")
    second = system + tokenizer.encode("What is a dog?")
    _, done1, _ = await collect(engine, request("a", first, max_new_tokens=2))
    _, done2, chunks = await collect(engine, request("b", second, max_new_tokens=2))
    assert done1[0].cached_tokens == 0
    expected = (len(system) // BS) * BS  # whole shared blocks only
    assert expected > 0
    assert done2[0].cached_tokens >= expected
    assert done2[0].cached_tokens < len(second)
    assert all(c.cached_tokens == done2[0].cached_tokens for c in chunks)
    assert engine.loads()["cache_hit_rate"] > 0


async def test_capacity_evicts_old_prefixes(make_engine, tokenizer) -> None:
    engine = await make_engine(kv_capacity_tokens=8 * BS)
    p1 = tokenizer.encode("alpha beta gamma delta " * 60)[: 6 * BS]
    p2 = tokenizer.encode("one two three four five " * 60)[: 6 * BS]
    await collect(engine, request("a", p1, max_new_tokens=1))
    _, again, _ = await collect(engine, request("b", p1, max_new_tokens=1))
    assert again[0].cached_tokens == 6 * BS
    await collect(engine, request("c", p2, max_new_tokens=1))  # pushes p1 out
    _, after, _ = await collect(engine, request("d", p1, max_new_tokens=1))
    assert after[0].cached_tokens < 6 * BS
    assert engine.loads()["kv_cached_tokens"] <= 8 * BS


async def test_kv_events_report_stored_removed_and_cleared(make_engine, tokenizer) -> None:
    engine = await make_engine(kv_capacity_tokens=4 * BS)
    received = []
    got = asyncio.Event()

    async def subscribe() -> None:
        async for batch in engine.kv_events():
            received.append(batch)
            if any(e.kind == "cleared" for e in batch.events):
                got.set()
                return

    task = asyncio.ensure_future(subscribe())
    await asyncio.sleep(0)  # let the subscriber register
    p1 = tokenizer.encode("lorem ipsum dolor sit amet " * 20)[: 3 * BS]
    p2 = tokenizer.encode("the rain in spain stays mainly " * 20)[: 3 * BS]
    await collect(engine, request("a", p1, max_new_tokens=1))
    await collect(engine, request("b", p2, max_new_tokens=1))
    assert engine.flush_cache()
    await asyncio.wait_for(got.wait(), 5)
    await task
    events = [e for b in received for e in b.events]
    kinds = {e.kind for e in events}
    assert kinds == {"stored", "removed", "cleared"}
    stored = [blk for e in events if e.kind == "stored" for blk in e.blocks]
    assert stored[0].token_ids == tuple(p1[:BS])
    seqs = [b.sequence_number for b in received]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # a late subscriber can replay from a sequence number still in the history
    replay = engine.kv_events(start_sequence_number=seqs[0])
    first = await asyncio.wait_for(replay.__anext__(), 5)
    assert first.sequence_number == seqs[0]
    await replay.aclose()


async def test_flush_is_refused_while_requests_run(make_engine, tokenizer) -> None:
    engine = await make_engine(fault="stall", fault_after_tokens=1)
    gen = engine.generate(request("a", tokenizer.encode("hello there")))
    await gen.__anext__()
    assert not engine.flush_cache()
    engine.abort("a")
    [item async for item in gen]
    assert engine.flush_cache()


async def test_batch_limit_queues_and_loads_report_it(make_engine, tokenizer) -> None:
    engine = await make_engine(max_running=1, fault="stall", fault_after_tokens=1)
    prompt = tokenizer.encode("queue me please")
    first = engine.generate(request("first", prompt))
    await first.__anext__()  # running, stalled after one token
    second_items = []

    async def run_second() -> None:
        async for item in engine.generate(request("second", prompt, max_new_tokens=1)):
            second_items.append(item)

    task = asyncio.ensure_future(run_second())
    await wait_until(lambda: engine.loads()["num_waiting_reqs"] == 1)
    loads = engine.loads()
    assert (loads["num_running_reqs"], loads["num_total_reqs"]) == (1, 2)
    assert loads["num_waiting_uncached_tokens"] == len(prompt)
    assert loads["num_used_tokens"] == len(prompt) + 1
    assert 0 < loads["token_usage"] <= 1 and loads["utilization"] == 1.0
    assert second_items == []
    engine.abort("first")
    [item async for item in first]
    engine.abort("second")  # the second stalls too (worker-wide fault) once admitted
    await asyncio.wait_for(task, 5)
    assert second_items[-1].finish_reason == "abort"
    assert engine.loads()["num_running_reqs"] == 0


async def test_abort_while_waiting_finishes_with_abort(make_engine, tokenizer) -> None:
    engine = await make_engine(max_running=1, fault="stall", fault_after_tokens=0)
    prompt = tokenizer.encode("waiting line")
    first = engine.generate(request("first", prompt))
    first_task = asyncio.ensure_future(first.__anext__())
    await wait_until(lambda: engine.loads()["num_running_reqs"] == 1)
    items = []

    async def run_second() -> None:
        async for item in engine.generate(request("second", prompt, n=2)):
            items.append(item)

    task = asyncio.ensure_future(run_second())
    await wait_until(lambda: engine.loads()["num_waiting_reqs"] == 1)
    assert engine.abort("second")
    await asyncio.wait_for(task, 5)
    assert [(i.index, i.finish_reason, i.completion_tokens) for i in items] == [
        (0, "abort", 0),
        (1, "abort", 0),
    ]
    assert "second" in engine.aborted_rids
    engine.abort("first")
    assert (await first_task).finish_reason == "abort"
    assert not engine.abort("nobody")


async def test_simulated_costs_sleep_on_the_loop(make_engine, tokenizer) -> None:
    """Costs are simulated by waiting: other requests progress meanwhile."""
    engine = await make_engine(prefill_us_per_token=200_000.0)  # 0.2 s per uncached token
    slow = asyncio.ensure_future(
        collect(engine, request("slow", tokenizer.encode("a long prompt to prefill"), max_new_tokens=1))
    )
    await wait_until(lambda: engine.loads()["num_running_reqs"] == 1)
    assert not slow.done()
    engine.abort("slow")
    _, done, _ = await asyncio.wait_for(slow, 5)
    assert done[0].finish_reason == "abort"
