"""Hash-ring policies: consistent_hashing (sticky sessions) and prefix_hash (prompt prefix).

The ring has ``virtual_nodes`` points per worker at ``blake2b("{url}#{i}")`` (first 8
bytes, little-endian); a key maps to the first point clockwise of ``blake2b(key)``. The
ring is built over the *available* workers, so a worker that leaves (or turns unhealthy)
gives up only its own arcs: its keys move to their clockwise successors and every other
key stays where it was (about 1/N of the keys move).
"""

from __future__ import annotations

import bisect
import hashlib
import random
import sys
from array import array
from collections.abc import Sequence
from operator import attrgetter

from smg.router.policies.base import (
    IMPLICIT_KEY_HEADERS,
    ROUTING_KEY_HEADER,
    TARGET_WORKER_HEADER,
    Policy,
    RequestInfo,
    least_loaded,
)
from smg.router.policies.config import PolicyConfig
from smg.router.worker import Worker

__all__ = ["ConsistentHashPolicy", "HashRing", "PrefixHashPolicy", "hash64"]

_url = attrgetter("url")
_load = attrgetter("load")


def hash64(data: str | bytes) -> int:
    if isinstance(data, str):
        data = data.encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


class HashRing:
    """A sorted ring of virtual nodes over worker URLs."""

    __slots__ = ("urls", "_points", "_owners")

    def __init__(self, urls: Sequence[str], virtual_nodes: int = 150) -> None:
        self.urls = tuple(urls)
        points = sorted(
            (hash64(f"{url}#{v}"), i) for i, url in enumerate(self.urls) for v in range(virtual_nodes)
        )
        self._points = [p for p, _ in points]
        self._owners = [i for _, i in points]

    def lookup(self, key: str | bytes) -> int:
        """Index (into ``urls``) of the worker owning ``key``; the ring must not be empty."""
        pos = bisect.bisect_left(self._points, hash64(key))
        if pos == len(self._points):
            pos = 0
        return self._owners[pos]


class _RingCache:
    """The rings for the last few distinct candidate sets (one per model, usually)."""

    def __init__(self, virtual_nodes: int, capacity: int = 32) -> None:
        self.virtual_nodes = virtual_nodes
        self.capacity = capacity
        self._rings: dict[tuple[str, ...], HashRing] = {}

    def ring(self, workers: Sequence[Worker]) -> HashRing:
        urls = tuple(map(_url, workers))
        ring = self._rings.get(urls)
        if ring is None:
            if len(self._rings) >= self.capacity:
                self._rings.clear()
            ring = self._rings[urls] = HashRing(urls, self.virtual_nodes)
        return ring


class ConsistentHashPolicy(Policy):
    """Sticky routing by a request key on a hash ring (SMG ``consistent_hashing``).

    Key priority: ``x-smg-target-worker: <index>`` picks the index-th available worker
    directly (None if out of range, as in SMG); else ``x-smg-routing-key``; else the
    ``user`` field; else the ``authorization``, ``x-forwarded-for`` or ``cookie`` header;
    else a random worker.
    """

    name = "consistent_hashing"

    def __init__(self, config: PolicyConfig = PolicyConfig(), rng: random.Random | None = None) -> None:
        super().__init__(rng)
        self._rings = _RingCache(config.virtual_nodes)

    def select(self, workers: Sequence[Worker], request: RequestInfo) -> Worker | None:
        if not workers:
            return None
        headers = request.headers
        target = headers.get(TARGET_WORKER_HEADER)
        if target is not None:
            try:
                index = int(target)
            except ValueError:
                return None
            return workers[index] if 0 <= index < len(workers) else None
        key = self.key(request)
        if key is None:
            return workers[self.rng.randrange(len(workers))]
        return workers[self._rings.ring(workers).lookup(key)]

    @staticmethod
    def key(request: RequestInfo) -> str | None:
        headers = request.headers
        key = headers.get(ROUTING_KEY_HEADER) or request.user
        if key:
            return key
        for name in IMPLICIT_KEY_HEADERS:
            value = headers.get(name)
            if value:
                return value
        return None


class PrefixHashPolicy(Policy):
    """Ring lookup by a hash of the prompt's first ``prefix_token_count`` tokens.

    The ring worker is used while its load is at most ``load_factor`` times the mean
    (``(total+1)/n``); otherwise the least-loaded worker. Unlike SMG, which needs token
    ids and returns no worker on HTTP, a request without tokens is keyed by the first
    ``4 * prefix_token_count`` characters of its text (about as many tokens).
    """

    name = "prefix_hash"

    def __init__(self, config: PolicyConfig = PolicyConfig(), rng: random.Random | None = None) -> None:
        super().__init__(rng)
        self.prefix_token_count = config.prefix_token_count
        self.load_factor = config.load_factor
        self._rings = _RingCache(config.virtual_nodes)

    def key(self, request: RequestInfo) -> bytes | None:
        if request.token_ids:
            prefix = array("I", request.token_ids[: self.prefix_token_count])
            if sys.byteorder == "big":
                prefix.byteswap()
            return b"t" + prefix.tobytes()
        if request.text:
            return b"s" + request.text[: 4 * self.prefix_token_count].encode()
        return None

    def select(self, workers: Sequence[Worker], request: RequestInfo) -> Worker | None:
        if not workers:
            return None
        key = self.key(request)
        if key is None:
            return least_loaded(workers)
        ring_worker = workers[self._rings.ring(workers).lookup(key)]
        limit = (sum(map(_load, workers)) + 1) / len(workers) * self.load_factor
        if ring_worker.load <= limit:
            return ring_worker
        fallback = least_loaded(workers)
        return fallback if fallback.load <= limit else ring_worker
