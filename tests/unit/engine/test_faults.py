"""Injected faults, worker-wide (config) and per request (``GenerateInput.fault``)."""

from __future__ import annotations

import asyncio

import pytest
from _engine_testlib import collect, request

from smg.engine.core import EngineDisconnect, EngineError, Finished, TokenChunk

PROMPT = "Fault injection test prompt"


async def _tokens_before_error(engine, inp) -> tuple[int, BaseException]:
    n = 0
    try:
        async for item in engine.generate(inp):
            if isinstance(item, TokenChunk):
                n += len(item.token_ids)
    except EngineError as exc:
        return n, exc
    raise AssertionError("no error")


async def test_error_before_first(make_engine, tokenizer) -> None:
    engine = await make_engine(fault="error_before_first")
    n, exc = await _tokens_before_error(engine, request("a", tokenizer.encode(PROMPT)))
    assert n == 0 and exc.status_code == 500 and "error_before_first" in exc.message
    assert engine.loads()["num_running_reqs"] == 0


@pytest.mark.parametrize("after", [3, 7])
async def test_error_mid_stream_after_n_tokens(make_engine, tokenizer, after) -> None:
    engine = await make_engine(fault="error_mid_stream", fault_after_tokens=after)
    n, exc = await _tokens_before_error(engine, request("a", tokenizer.encode(PROMPT)))
    assert n == after and exc.status_code == 500
    assert not isinstance(exc, EngineDisconnect)
    assert engine.loads()["num_running_reqs"] == 0


async def test_disconnect_mid_stream_is_its_own_exception(make_engine, tokenizer) -> None:
    engine = await make_engine(fault="disconnect_mid_stream", fault_after_tokens=2)
    n, exc = await _tokens_before_error(engine, request("a", tokenizer.encode(PROMPT)))
    assert n == 2 and isinstance(exc, EngineDisconnect)


async def test_per_request_fault_with_argument_overrides_config(make_engine, tokenizer) -> None:
    engine = await make_engine()
    inp = request("a", tokenizer.encode(PROMPT))
    inp.fault = "error_mid_stream:5"
    n, _ = await _tokens_before_error(engine, inp)
    assert n == 5
    ok = request("b", tokenizer.encode(PROMPT), max_new_tokens=8)
    ids, done, _ = await collect(engine, ok)  # no fault on the next request
    assert len(ids[0]) == 8


async def test_unknown_fault_is_a_400(make_engine, tokenizer) -> None:
    engine = await make_engine()
    inp = request("a", tokenizer.encode(PROMPT))
    inp.fault = "meteor_strike"
    with pytest.raises(EngineError, match="unknown fault") as info:
        await collect(engine, inp)
    assert info.value.status_code == 400
    with pytest.raises(ValueError, match="unknown fault"):
        from smg.engine.config import WorkerConfig

        WorkerConfig(fault="meteor_strike")


async def test_stall_holds_until_abort(make_engine, tokenizer) -> None:
    engine = await make_engine(fault="stall", fault_after_tokens=2)
    gen = engine.generate(request("a", tokenizer.encode(PROMPT)))
    first = [await gen.__anext__(), await gen.__anext__()]
    assert sum(len(c.token_ids) for c in first) == 2
    pending = asyncio.ensure_future(gen.__anext__())
    done, _ = await asyncio.wait({pending}, timeout=0.2)
    assert not done  # stalled: nothing more comes
    assert engine.abort("a")
    fin = await asyncio.wait_for(pending, 5)
    assert isinstance(fin, Finished) and fin.finish_reason == "abort"
    assert fin.completion_tokens == 2
    assert list(engine.aborted_rids) == ["a"]


async def test_slow_first_token(make_engine, tokenizer) -> None:
    engine = await make_engine(fault="slow_first_token", fault_delay_s=60.0)
    gen = engine.generate(request("a", tokenizer.encode(PROMPT)))
    pending = asyncio.ensure_future(gen.__anext__())
    done, _ = await asyncio.wait({pending}, timeout=0.2)
    assert not done  # a minute to the first token
    engine.abort("a")
    fin = await asyncio.wait_for(pending, 5)
    assert isinstance(fin, Finished) and fin.finish_reason == "abort"
    await gen.aclose()
    # per request with a short delay, the request then completes normally
    inp = request("b", tokenizer.encode(PROMPT), max_new_tokens=3)
    inp.fault = "slow_first_token:0.01"
    ids, done_, _ = await collect(engine, inp)
    assert len(ids[0]) == 3 and done_[0].finish_reason == "length"


async def test_unhealthy(make_engine) -> None:
    assert (await make_engine()).is_healthy()
    assert not (await make_engine(fault="unhealthy")).is_healthy()


async def test_closing_the_stream_frees_the_slot(make_engine, tokenizer) -> None:
    """A client that goes away (generator closed) releases its batch slot."""
    engine = await make_engine(max_running=1)
    gen = engine.generate(request("a", tokenizer.encode(PROMPT)))
    await gen.__anext__()
    assert engine.loads()["num_running_reqs"] == 1
    await gen.aclose()
    assert engine.loads()["num_running_reqs"] == 0
    ids, _, _ = await collect(engine, request("b", tokenizer.encode(PROMPT), max_new_tokens=2))
    assert len(ids[0]) == 2
