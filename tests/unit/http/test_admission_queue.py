"""smg.http.admission without a server: the token bucket on a fake clock, the FIFO
hand-off of slots, and a waiter cancelled (its client gone) while queued or just after
it was handed a slot, which must not lose the slot."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from smg.config import GatewayConfig
from smg.http.admission import Admission, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Sent:
    def __init__(self) -> None:
        self.messages: list[dict] = []

    async def __call__(self, message: dict) -> None:
        self.messages.append(message)

    @property
    def status(self) -> int:
        return self.messages[0]["status"]


SCOPE = {"type": "http", "method": "POST", "path": "/v1/chat/completions"}


def test_bucket_spends_and_refills():
    bucket = TokenBucket(rate=2.0, capacity=3.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)  # the next token in half a second
    assert bucket.take(0.5) == 0.0
    assert bucket.take(100.0) == 0.0  # never more than the capacity saved up
    assert [bucket.take(100.0) for _ in range(3)][-1] > 0
    with pytest.raises(ValueError):
        TokenBucket(rate=0, capacity=1, now=0)


def test_build_is_none_when_every_limit_is_off():
    assert Admission.build(GatewayConfig()) is None
    assert Admission.build(GatewayConfig.from_mapping({"max_concurrent_requests": 0})) is None
    adm = Admission.build(GatewayConfig.from_mapping({"max_concurrent_requests": 4, "queue_size": 2}))
    assert adm is not None and adm.max_concurrent == 4 and adm.queue_size == 2 and adm.bucket is None
    with pytest.raises(ValueError):
        GatewayConfig.from_mapping({"queue_size": -1})


def test_only_inference_posts_are_admitted():
    assert Admission.applies(SCOPE)
    assert Admission.applies({**SCOPE, "path": "/generate"})
    assert not Admission.applies({**SCOPE, "method": "GET", "path": "/v1/models"})
    for path in ("/health", "/readiness", "/metrics", "/workers", "/flush_cache", "/v1/tokenizers"):
        assert not Admission.applies({**SCOPE, "path": path}), path


async def test_slots_pass_to_waiters_in_order_and_a_cancelled_waiter_keeps_none():
    adm = Admission(max_concurrent=1, queue_size=3, queue_timeout=60)
    assert await adm.enter(SCOPE, Sent())
    order: list[int] = []

    async def waiter(i: int) -> None:
        assert await adm.enter(SCOPE, Sent())
        order.append(i)
        await asyncio.sleep(0)
        adm.leave()

    tasks = [asyncio.create_task(waiter(i)) for i in range(3)]
    while len(adm.waiters) < 3:
        await asyncio.sleep(0)
    tasks[1].cancel()  # its client went away while it waited
    await asyncio.gather(tasks[1], return_exceptions=True)
    assert len(adm.waiters) == 2
    adm.leave()
    await asyncio.gather(tasks[0], tasks[2])
    assert order == [0, 2] and adm.active == 0 and not adm.waiters


async def test_a_waiter_cancelled_after_the_hand_off_gives_the_slot_back():
    adm = Admission(max_concurrent=1, queue_size=1, queue_timeout=60)
    assert await adm.enter(SCOPE, Sent())
    task = asyncio.create_task(adm.enter(SCOPE, Sent()))
    while not adm.waiters:
        await asyncio.sleep(0)
    adm.leave()  # the slot goes to the waiter...
    task.cancel()  # ...whose client leaves before it runs
    with pytest.raises(asyncio.CancelledError):
        await task
    assert adm.active == 0 and not adm.waiters
    assert await adm.enter(SCOPE, Sent())  # the slot is free


async def test_timeout_full_queue_and_rate_answers():
    clock = Clock()
    adm = Admission(max_concurrent=1, queue_size=1, queue_timeout=0.01, rate=1.0, clock=clock)
    assert adm.bucket is not None and adm.bucket.capacity == 1.0
    assert await adm.enter(SCOPE, Sent())
    clock.now += 1  # a token again
    timed_out = Sent()
    assert not await adm.enter(SCOPE, timed_out)
    assert timed_out.status == 408 and not adm.waiters
    rate = Sent()
    assert not await adm.enter(SCOPE, rate)  # no token yet
    assert rate.status == 429 and (b"retry-after", b"1") in rate.messages[0]["headers"]
    assert orjson.loads(rate.messages[1]["body"])["error"]["type"] == "rate_limit_error"
    adm.leave()
    assert adm.tally == {"allowed": 1, "queue_full": 0, "queue_timeout": 1, "rate": 1, "tenant_rate": 0,
                         "shed": 0}


async def test_tenant_buckets_are_bounded(monkeypatch):
    monkeypatch.setattr("smg.http.admission.TENANT_BUCKETS_MAX", 3)
    adm = Admission(tenant_rate=1.0, clock=Clock())
    for i in range(10):
        assert await adm.enter({**SCOPE, "smg.tenant": f"t{i}"}, Sent())
        adm.leave()
    assert len(adm.tenants) == 3 and list(adm.tenants) == ["t7", "t8", "t9"]
    assert b"smg_admission_tenant_buckets 3" in adm.metrics()
