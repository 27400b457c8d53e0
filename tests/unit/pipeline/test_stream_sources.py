"""ItemStream: the batched stream interface (take / ended / wait / first / aclose) over an
async iterator of worker items, as the streamed pipeline reads grpc.aio calls and
prefill/decode pairs."""

from __future__ import annotations

import pytest

from smg.clients.grpc import ItemStream
from smg.clients.grpc_types import WorkerCallError


class Iterator:
    """Yields ``items``, then raises ``error`` (if any); records aclose."""

    def __init__(self, items: list, error: Exception | None = None) -> None:
        self.items = list(items)
        self.error = error
        self.closed = False

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.items:
            return self.items.pop(0)
        if self.error is not None:
            raise self.error
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self.closed = True


async def _drain(stream: ItemStream) -> list:
    got = []
    while True:
        got.extend(stream.take())
        if stream.ended:
            return got
        await stream.wait()


async def test_items_then_the_end() -> None:
    stream = ItemStream(Iterator(["a", "b", "c"]))
    await stream.first()
    assert await _drain(stream) == ["a", "b", "c"]
    assert stream.take() == [] and stream.ended


async def test_ready_items_come_first() -> None:
    stream = ItemStream(Iterator(["b"]), ("a",))
    await stream.first()  # already has one: does not read
    assert stream.take() == ["a"] and not stream.ended
    assert await _drain(stream) == ["b"]


async def test_a_failure_before_the_first_item_raises_from_first() -> None:
    error = WorkerCallError("down", retryable=True)
    stream = ItemStream(Iterator([], error))
    with pytest.raises(WorkerCallError) as info:
        await stream.first()
    assert info.value is error and stream.ended


async def test_a_failure_after_items_comes_once_they_are_taken() -> None:
    error = WorkerCallError("mid-stream", retryable=False)
    stream = ItemStream(Iterator(["a", "b"], error))
    await stream.first()
    got = []
    with pytest.raises(WorkerCallError) as info:
        while True:
            got.extend(stream.take())
            await stream.wait()
    assert got == ["a", "b"] and info.value is error and stream.ended


async def test_other_exceptions_are_not_swallowed() -> None:
    stream = ItemStream(Iterator([], ValueError("bug")))
    with pytest.raises(ValueError):
        await stream.first()


async def test_aclose_closes_the_iterator() -> None:
    it = Iterator(["a", "b"])
    stream = ItemStream(it)
    await stream.first()
    await stream.aclose()
    assert it.closed
