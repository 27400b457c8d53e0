"""Helpers for the reference-engine tests: run a request, build one, wait for a state."""

from __future__ import annotations

import asyncio

from smg.engine.core import Engine, Finished, GenerateInput, SamplingParams, TokenChunk

async def collect(engine: Engine, inp: GenerateInput) -> tuple[dict[int, list[int]], dict[int, Finished], list[TokenChunk]]:
    """Run one request: (token ids per index, Finished per index, the chunks)."""
    ids: dict[int, list[int]] = {}
    done: dict[int, Finished] = {}
    chunks: list[TokenChunk] = []
    async for item in engine.generate(inp):
        if isinstance(item, Finished):
            assert item.index not in done, "one Finished per index"
            done[item.index] = item
        else:
            assert item.index not in done, "no chunk after Finished"
            chunks.append(item)
            ids.setdefault(item.index, []).extend(item.token_ids)
    return ids, done, chunks


def request(rid: str, input_ids: list[int], stream: bool = True, **params) -> GenerateInput:
    return GenerateInput(rid=rid, input_ids=list(input_ids), params=SamplingParams(**params), stream=stream)


async def wait_until(predicate, timeout: float = 5.0) -> None:
    """Poll a condition on the event loop (no fixed sleeps in assertions)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.002)
