"""The lean client's GenerateStream (read a worker read at a time) against the reference
worker: every message of a read in one take, plain chunks as tuples when the grpcwire
kernel is compiled, errors after the items that came before them, aborts when left early."""

from __future__ import annotations

import contextlib

import pytest
from _grpc_worker_lib import deepseek_tokenizer
from test_grpc_client_lean import until, worker as lean_client_worker

from smg._fast import grpcwire
from smg.clients.grpc_types import Chunk, Complete, GenParams, WorkerCallError


@pytest.fixture(params=["sglang", "vllm"])
def proto(request):
    return request.param


@contextlib.asynccontextmanager
async def worker(proto: str, **config):
    """A reference worker (lean server) and a lean client of it."""
    async with lean_client_worker(deepseek_tokenizer(), ("lean", proto, "lean"), **config) as pair:
        yield pair


def _chunk(item):
    return Chunk(*item) if type(item) is tuple else item


def _completions(items: list) -> list[int]:
    """The completion count of every chunk in ``items`` (runs spelled out by their marks)."""
    out = []
    for item in items:
        out += item[5][1::2] if type(item) is tuple else [item.completion_tokens]
    return out


async def test_one_take_returns_everything_that_arrived(proto) -> None:
    async with worker(proto) as (_, client):
        stream = await client.stream(GenParams("all-at-once", [1, 2, 3], max_new_tokens=6, ignore_eos=True))
        await stream.first()
        await until(lambda: stream._call.status is not None)  # the worker is done: all of it is here
        items = stream.take()
        assert not stream.ended and stream.take() == [] and stream.ended
        assert isinstance(items[-1], Complete) and items[-1].finish_reason == "length"
        if grpcwire.IMPLEMENTATION == "cython":  # the six chunks as one run
            index, ids, prompt, completion, cached, marks = items[0]
            assert len(items) == 2 and (index, len(ids), prompt, completion) == (0, 6, 3, 6)
            assert marks == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]
        else:  # upb: one Chunk each
            assert [c.completion_tokens for c in items[:-1]] == [1, 2, 3, 4, 5, 6]
        await stream.aclose()


async def test_take_without_merging_gives_one_item_per_chunk(proto) -> None:
    async with worker(proto) as (_, client):
        stream = await client.stream(GenParams("one-each", [1, 2, 3], max_new_tokens=4, ignore_eos=True))
        await stream.first()
        await until(lambda: stream._call.status is not None)
        items = stream.take(merge=False)
        chunks = [_chunk(i) for i in items[:-1]]
        assert [c.completion_tokens for c in chunks] == [1, 2, 3, 4]
        assert all(c.index == 0 and len(c.token_ids) == 1 and c.prompt_tokens == 3 for c in chunks)


async def test_wait_wakes_for_each_read(proto) -> None:
    async with worker(proto, decode_us_per_token=1000) as (_, client):
        stream = await client.stream(GenParams("paced", [1, 2, 3], max_new_tokens=5, ignore_eos=True))
        await stream.first()
        got = []
        while True:
            got.extend(stream.take())
            if stream.ended:
                break
            await stream.wait()
        assert _completions(got[:-1]) == [1, 2, 3, 4, 5]
        assert isinstance(got[-1], Complete)


async def test_an_error_before_the_first_message_raises_from_first(proto) -> None:
    async with worker(proto, fault="error_before_first") as (_, client):
        stream = await client.stream(GenParams("fails", [1, 2, 3], max_new_tokens=5))
        with pytest.raises(WorkerCallError) as info:
            await stream.first()
        assert info.value.retryable and "error_before_first" in info.value.message


async def test_an_error_mid_stream_comes_after_the_items(proto) -> None:
    async with worker(proto, fault="error_mid_stream", fault_after_tokens=3) as (_, client):
        stream = await client.stream(GenParams("mid", [1, 2, 3], max_new_tokens=50, ignore_eos=True))
        await stream.first()
        got = []
        with pytest.raises(WorkerCallError) as info:
            while True:
                got.extend(stream.take())
                await stream.wait()
        assert _completions(got) == [1, 2, 3]
        assert not info.value.retryable and stream.ended


async def test_leaving_early_aborts_on_the_worker(proto) -> None:
    async with worker(proto, decode_us_per_token=2000) as (engine, client):
        stream = await client.stream(GenParams("leave", [1, 2, 3], max_new_tokens=100_000, ignore_eos=True))
        await stream.first()
        assert stream.take()
        await stream.aclose()
        await until(lambda: "leave" in engine.aborted_rids)
        # the connection carries on
        items = [i async for i in client.generate(GenParams("after", [1, 2, 3], max_new_tokens=2))]
        assert isinstance(items[-1], Complete) and items[-1].completion_tokens == 2
