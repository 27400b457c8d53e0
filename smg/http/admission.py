"""Admission control: which inference requests the gateway takes on, and which it refuses
at once instead of letting them queue without bound.

Only inference requests are admitted: ``POST`` on a data-plane route
(:func:`smg.security.guard.route_class`). Health, metrics and the control plane never
wait here. Checks, in order (the cheapest refusal first):

1. **load shedding** (``--shed-inflight-per-worker N``, smg's own): when every available
   worker already has ``N`` of the gateway's requests in flight (its local in-flight
   count, the load the policies balance on), a new request gets **503** with
   ``Retry-After: 1``. A worker with no free slot would only queue it on its own side,
   where nothing bounds the wait.
2. **rate limits** (token buckets, ``Retry-After`` = seconds until a token is due):
   ``--rate-limit-tokens-per-second`` for the whole gateway (bursting up to
   ``--max-concurrent-requests``, else one second's worth), and
   ``--tenant-rate-limit-tokens-per-second`` per tenant (the tenant of a tenant API key,
   ``scope["smg.tenant"]``; requests without a tenant share the global bucket only).
   An empty bucket is a **429** ``rate_limit_error`` at once: a token that only comes
   later is not worth holding the connection for.
3. **concurrency** (``--max-concurrent-requests``, the Rust gateway's legacy limiter):
   at most that many admitted requests at a time. A slot is held until the response
   body is fully sent or the client is gone (the app call returns). A request with no
   free slot waits in a FIFO queue of ``--queue-size``; a full queue (or size 0) is a
   **429**, a wait past ``--queue-timeout-secs`` a **408**, both with ``Retry-After``.

The request body is read whole before any of these checks (:meth:`Admission.buffered`;
the app then reads it from memory): a client that sends its body slowly holds no slot
while it does (smg's HTTP/1.1 server cuts it off after ``--body-read-timeout-secs``),
so a few slow clients cannot take every slot. A queued request holds its body, at most
``--queue-size`` of them, each under ``--max-payload-size``.

Every refusal is an OpenAI-shaped error body (:func:`smg.errors.error_body`). The state
is per gateway process (one event loop): ``--workers N`` processes admit ``N`` times the
limits. With every limit off there is no :class:`Admission` at all and
:class:`~smg.http.middleware.Front` pays one ``is None`` test per request.

Differences from the Rust gateway, on purpose: its ``--max-concurrent-requests -1``
derives a bound from the host in 1.13 (older releases: disabled); here -1 and 0 are both
off. Its legacy bucket handed tokens back on completion *and* refilled them, so the
concurrency cap leaked by the refill rate; here the cap is exact and the rate limit is a
separate bucket whose tokens are spent.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from starlette.types import Message, Receive, Scope, Send

from smg.errors import SmgError, error_body, send_error
from smg.security.guard import route_class

if TYPE_CHECKING:
    from smg.config import GatewayConfig

__all__ = ["Admission", "TokenBucket"]

TENANT_BUCKETS_MAX = 10_000  # tenants with a bucket of their own (least recently seen dropped)


class TokenBucket:
    """``rate`` tokens a second, at most ``capacity`` saved up. :meth:`take` spends one and
    answers 0, or answers how many seconds until one is due (spending nothing)."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("a token bucket needs rate > 0 and capacity >= 1")
        self.rate, self.capacity, self.tokens, self.stamp = rate, capacity, capacity, now

    def take(self, now: float) -> float:
        tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return 0.0
        self.tokens = tokens
        return (1.0 - tokens) / self.rate


class Admission:
    """The admission state of one gateway process (see the module docstring)."""

    def __init__(self, *, max_concurrent: int = 0, queue_size: int = 100, queue_timeout: float = 60.0,
                 rate: float = 0.0, tenant_rate: float = 0.0, shed_inflight: int = 0,
                 workers: Callable[[], Sequence[Any]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if queue_size < 0 or queue_timeout < 0:
            raise ValueError("queue size and timeout must be >= 0")
        self.max_concurrent = max_concurrent if max_concurrent > 0 else 0
        self.queue_size = queue_size
        self.queue_timeout = queue_timeout
        self.clock = clock
        self.bucket = TokenBucket(rate, max(rate, self.max_concurrent, 1.0), clock()) if rate > 0 else None
        self.tenant_rate = tenant_rate if tenant_rate > 0 else 0.0
        self.tenants: OrderedDict[str, TokenBucket] = OrderedDict()
        self.shed_inflight = shed_inflight if shed_inflight > 0 else 0
        self.workers = workers
        self.active = 0
        self.waiters: deque[asyncio.Future[bool]] = deque()
        self.tally: dict[str, int] = {"allowed": 0, "queue_full": 0, "queue_timeout": 0, "rate": 0,
                                      "tenant_rate": 0, "shed": 0}

    @classmethod
    def build(cls, config: GatewayConfig, workers: Callable[[], Sequence[Any]] | None = None) -> Admission | None:
        """The admission of ``config``, or None when every limit is off."""
        rel = config.reliability
        if (rel.max_concurrent_requests <= 0 and rel.rate_limit_tokens_per_second <= 0
                and rel.tenant_rate_limit_tokens_per_second <= 0 and rel.shed_inflight_per_worker <= 0):
            return None
        return cls(max_concurrent=rel.max_concurrent_requests, queue_size=rel.queue_size,
                   queue_timeout=rel.queue_timeout_secs, rate=rel.rate_limit_tokens_per_second,
                   tenant_rate=rel.tenant_rate_limit_tokens_per_second,
                   shed_inflight=rel.shed_inflight_per_worker, workers=workers)

    @staticmethod
    def applies(scope: Scope) -> bool:
        return scope["method"] == "POST" and route_class(scope["path"]) == "data"

    async def enter(self, scope: Scope, send: Send) -> bool:
        """Admit the request (True: it holds a slot when a concurrency limit is set; call
        :meth:`leave` once it is done), or answer it and say False."""
        if self.shed_inflight and self.workers is not None:
            workers = self.workers()
            if workers and all(w.load >= self.shed_inflight for w in workers):
                return await self._refuse(send, "shed", 503, 1.0, "service_unavailable",
                                          "every worker is saturated; retry later")
        if self.bucket is not None or self.tenant_rate:
            now = self.clock()
            wait = self.bucket.take(now) if self.bucket is not None else 0.0
            if wait:
                return await self._refuse(send, "rate", 429, wait, "rate_limit_error", "rate limit exceeded")
            tenant = scope.get("smg.tenant")
            if tenant is not None and self.tenant_rate:
                wait = self._tenant_bucket(tenant, now).take(now)
                if wait:
                    return await self._refuse(send, "tenant_rate", 429, wait, "rate_limit_error",
                                              "rate limit of this tenant exceeded")
        if not self.max_concurrent or (self.active < self.max_concurrent and not self.waiters):
            self.active += 1
            self.tally["allowed"] += 1
            return True
        if len(self.waiters) >= self.queue_size:
            return await self._refuse(send, "queue_full", 429, 1.0, "rate_limit_error",
                                      "too many requests: the admission queue is full")
        if await self._wait():
            self.tally["allowed"] += 1
            return True
        return await self._refuse(send, "queue_timeout", 408, 1.0, "timeout_error",
                                  f"request waited {self.queue_timeout:g} s for admission")

    @staticmethod
    async def buffered(receive: Receive, send: Send) -> Receive | None:
        """The whole request body read now, and a ``receive`` that hands it over in one
        message (then the client's own, which reports its disconnect); None when the
        client left or was answered (413) meanwhile."""
        try:
            message = await receive()
            if message["type"] != "http.request":
                return None
            if message.get("more_body", False):
                parts = [message.get("body", b"")]
                while message.get("more_body", False):
                    message = await receive()
                    if message["type"] != "http.request":
                        return None
                    parts.append(message.get("body", b""))
                message = {"type": "http.request", "body": b"".join(parts), "more_body": False}
        except SmgError as exc:  # PayloadTooLarge from Front's counting receive
            await send_error(send, exc)
            return None
        first: Message | None = message

        async def replay() -> Message:
            nonlocal first
            if first is not None:
                out, first = first, None
                return out
            return await receive()

        return replay

    def leave(self) -> None:
        """The request's slot back: to the longest waiter, if any, else to the pool."""
        waiters = self.waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(True)  # the slot passes on: active stays
                return
        self.active -= 1

    async def _wait(self) -> bool:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        self.waiters.append(fut)
        timer = loop.call_later(self.queue_timeout, self._expire, fut)
        try:
            return await fut
        except asyncio.CancelledError:  # the client went away while waiting
            if fut.done() and not fut.cancelled() and fut.result():
                self.leave()  # handed a slot it will not use
            else:
                self._forget(fut)
            raise
        finally:
            timer.cancel()

    def _expire(self, fut: asyncio.Future[bool]) -> None:
        if not fut.done():
            fut.set_result(False)
            self._forget(fut)

    def _forget(self, fut: asyncio.Future[bool]) -> None:
        try:
            self.waiters.remove(fut)
        except ValueError:
            pass

    def _tenant_bucket(self, tenant: str, now: float) -> TokenBucket:
        tenants = self.tenants
        bucket = tenants.get(tenant)
        if bucket is None:
            bucket = tenants[tenant] = TokenBucket(self.tenant_rate, max(self.tenant_rate, 1.0), now)
            if len(tenants) > TENANT_BUCKETS_MAX:
                tenants.popitem(last=False)
        else:
            tenants.move_to_end(tenant)
        return bucket

    async def _refuse(self, send: Send, reason: str, status: int, retry_after: float, kind: str,
                      message: str) -> bool:
        self.tally[reason] += 1
        body = error_body(status, message, kind)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)),
                   (b"retry-after", b"%d" % max(1, math.ceil(retry_after)))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return False

    def metrics(self) -> bytes:
        """Admission counters, current use and every bound, in the Prometheus text format."""
        tally = self.tally
        rejected = sum(n for reason, n in tally.items() if reason != "allowed")
        lines = [
            "# HELP smg_http_rate_limit_total inference requests admitted or refused by admission control",
            "# TYPE smg_http_rate_limit_total counter",
            f'smg_http_rate_limit_total{{result="allowed"}} {tally["allowed"]}',
            f'smg_http_rate_limit_total{{result="rejected"}} {rejected}',
            "# HELP smg_admission_rejected_total refused inference requests by reason",
            "# TYPE smg_admission_rejected_total counter",
            *(f'smg_admission_rejected_total{{reason="{r}"}} {n}' for r, n in tally.items() if r != "allowed"),
            "# HELP smg_admission_active admitted inference requests in flight",
            "# TYPE smg_admission_active gauge",
            f"smg_admission_active {self.active}",
            "# HELP smg_admission_queued requests waiting for an admission slot",
            "# TYPE smg_admission_queued gauge",
            f"smg_admission_queued {len(self.waiters)}",
            "# HELP smg_admission_tenant_buckets tenants with a rate-limit bucket",
            "# TYPE smg_admission_tenant_buckets gauge",
            f"smg_admission_tenant_buckets {len(self.tenants)}",
            "# HELP smg_admission_bound a bound of admission control (0: off)",
            "# TYPE smg_admission_bound gauge",
            f'smg_admission_bound{{bound="max_concurrent_requests"}} {self.max_concurrent}',
            f'smg_admission_bound{{bound="queue_size"}} {self.queue_size if self.max_concurrent else 0}',
            f'smg_admission_bound{{bound="queue_timeout_secs"}} {self.queue_timeout:g}',
            f'smg_admission_bound{{bound="rate_limit_tokens_per_second"}} '
            f'{self.bucket.rate if self.bucket is not None else 0:g}',
            f'smg_admission_bound{{bound="tenant_rate_limit_tokens_per_second"}} {self.tenant_rate:g}',
            f'smg_admission_bound{{bound="tenant_buckets"}} {TENANT_BUCKETS_MAX if self.tenant_rate else 0}',
            f'smg_admission_bound{{bound="shed_inflight_per_worker"}} {self.shed_inflight}',
        ]
        return ("\n".join(lines) + "\n").encode()
