"""Prefill/decode pairs: one prefill worker and one decode worker per request.

Each pool has its own policy (SMG's ``--prefill-policy`` / ``--decode-policy``): the
prefill pick is where the prompt's KV gets computed (cache_aware pays off there), the
decode pick is where tokens are generated (power_of_two or least_load). Both legs of one
request meet through a *bootstrap room*, a fresh random integer per request (per element
for a batch) that the gateway sends on both legs::

    pd = PDRouter(registry, create_policy("cache_aware"), create_policy("power_of_two"))
    pair = pd.select_pair(RequestInfo(text=prompt, model=model), exclude=tried_ids)
    room = new_room(ROOM_BITS_GRPC)        # SGLang's gRPC field is int32
    host = pair.bootstrap_host             # the prefill worker's host, from its url

Transports (``smg.http.pd``, ``smg.pipeline.pd``) do the sending; this module only picks.
"""

from __future__ import annotations

import random
import urllib.parse
from collections.abc import Collection
from dataclasses import dataclass

from smg.router.policies.base import Policy, RequestInfo
from smg.router.registry import WorkerRegistry
from smg.router.retry import RetryConfig
from smg.router.router import Router
from smg.router.worker import LoadReport, Worker, WorkerRole

__all__ = [
    "DEFAULT_BOOTSTRAP_PORT",
    "ROOM_BITS_GRPC",
    "ROOM_BITS_HTTP",
    "PDPair",
    "PDRouter",
    "bootstrap_host",
    "new_room",
    "new_rooms",
]

DEFAULT_BOOTSTRAP_PORT = 8998  # SGLang's default; SMG's gRPC legs fall back to it
ROOM_BITS_GRPC = 31  # DisaggregatedParams.bootstrap_room is int32: rooms in [0, 2^31-1]
ROOM_BITS_HTTP = 63  # SMG's HTTP PD router draws u63 rooms

_rng = random.Random()  # seeded from os.urandom; rooms need to be distinct, not secret


def new_room(bits: int = ROOM_BITS_HTTP) -> int:
    """A fresh random bootstrap room in ``[0, 2**bits - 1]``."""
    return _rng.getrandbits(bits)


def new_rooms(count: int, bits: int = ROOM_BITS_HTTP) -> list[int]:
    """``count`` distinct rooms (one per element of a batch)."""
    rooms: list[int] = []
    seen: set[int] = set()
    while len(rooms) < count:
        room = _rng.getrandbits(bits)
        if room not in seen:
            seen.add(room)
            rooms.append(room)
    return rooms


def bootstrap_host(url: str) -> str:
    """The host part of a worker url (``http://10.0.0.5:30000`` -> ``10.0.0.5``)."""
    host = urllib.parse.urlsplit(url if "://" in url else "http://" + url).hostname
    return host or url


@dataclass(frozen=True, slots=True)
class PDPair:
    prefill: Worker
    decode: Worker

    @property
    def bootstrap_host(self) -> str:
        return bootstrap_host(self.prefill.url)

    @property
    def bootstrap_port(self) -> int | None:
        """The prefill worker's KV bootstrap port; None when it was registered without one."""
        return self.prefill.bootstrap_port

    @property
    def ids(self) -> tuple[str, str]:
        return self.prefill.id, self.decode.id


class PDRouter:
    """Picks (prefill, decode) pairs with a policy per pool over one registry."""

    def __init__(
        self,
        registry: WorkerRegistry,
        prefill_policy: Policy,
        decode_policy: Policy,
        *,
        retry: RetryConfig = RetryConfig(),
    ) -> None:
        self.registry = registry
        self.retry = retry
        self.prefill = Router(registry, prefill_policy, retry=retry)
        self.decode = Router(registry, decode_policy, retry=retry)

    def select_pair(self, request: RequestInfo, exclude: Collection[str] = ()) -> PDPair | None:
        """A pair for ``request``, avoiding worker ids in ``exclude`` while others remain.

        None when either pool has no available worker for the model (see
        :meth:`unavailable_reason`).
        """
        prefill = self.prefill.select(request, exclude, role=WorkerRole.PREFILL)
        if prefill is None:
            return None
        decode = self.decode.select(request, exclude, role=WorkerRole.DECODE)
        if decode is None:
            return None
        return PDPair(prefill, decode)

    def unavailable_reason(self, request: RequestInfo) -> str:
        """Why :meth:`select_pair` found no pair, in words for an error message."""
        model = f" for model '{request.model}'" if request.model else ""
        missing = [
            role.value
            for role in (WorkerRole.PREFILL, WorkerRole.DECODE)
            if not self.registry.available(request.model, role)
        ]
        if not missing:
            return f"no prefill/decode pair available{model}"
        return f"no healthy {' or '.join(missing)} worker available{model}"

    def on_complete(self, pair: PDPair, request: RequestInfo, prefill_ok: bool, decode_ok: bool) -> None:
        self.prefill.on_complete(pair.prefill, request, prefill_ok)
        self.decode.on_complete(pair.decode, request, decode_ok)

    def on_load_report(self, worker: Worker, report: LoadReport) -> None:
        worker.load_report = report
        router = self.prefill if worker.role is WorkerRole.PREFILL else self.decode
        for policy in router.policies():
            policy.on_load_report(worker, report)

    def start_maintenance(self, interval_secs: float) -> None:
        self.prefill.start_maintenance(interval_secs)
        self.decode.start_maintenance(interval_secs)

    def reset(self) -> None:
        self.prefill.reset()
        self.decode.reset()

    async def stop(self) -> None:
        await self.prefill.stop()
        await self.decode.stop()

    def close(self) -> None:
        self.prefill.close()
        self.decode.close()
