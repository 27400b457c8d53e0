"""cache_aware: route a request to the worker most likely to hold its prefix in KV cache.

SMG's algorithm, with its defaults (``PolicyConfig``):

- one multi-tenant radix tree per model and key kind (``smg._fast.radix``): text keys
  (Unicode characters of the routing text) on the HTTP path, token keys page-aligned to
  ``block_size`` (16) on the gRPC path; the tenant is the worker URL;
- the pool is *imbalanced* when ``max_load - min_load > balance_abs_threshold`` and
  ``max_load > min_load * balance_rel_threshold`` (local in-flight counts), or, with load
  reports, when KV usage crosses ``overload_token_usage_threshold`` or spreads more than
  ``balance_token_usage_threshold``; then the least-loaded worker takes the request;
- otherwise the prefix is matched: if ``matched / len(key) > cache_threshold`` the
  request goes to the worker holding the match;
- the chosen worker's key is inserted into the tree; ``maintenance()`` evicts LRU leaves
  until every tenant is within ``max_tree_size`` chars/tokens.

Besides SMG's per-worker budget, every tree and worker together hold at most
``max_tree_total`` units (0: sized to the machine, :mod:`.tree_budget`): past it,
maintenance evicts every worker of every tree down to an equal share. Maintenance runs on
the router's timer and also as soon as the units inserted since the last run pass a
sixteenth of the total, so a burst of huge prompts cannot grow the trees between two
timer runs by more than that.

Where smg does better than SMG (users' complaints, peers.md section 7):

1. No "death spiral" (sglang#14305, #14532). SMG sends every cache miss to the single
   least-loaded worker; its tie-break is fixed, so a burst of misses lands on one worker
   whose load signal lags the expensive prefills it is doing. smg sends a miss to a
   *band* of least-loaded workers (load within ``miss_load_slack`` of the minimum) and,
   within it, prefers the worker with the longest partial match of its own (one
   ``match_tenants`` descent gives every worker's length), then the lower load, then a
   random one. Partial matches under half the cache threshold are noise (a shared first
   word) and are ignored, or the worker holding the most text would win every miss.
   Misses therefore spread across equally loaded workers while a real partial prefix
   still counts. A cache hit likewise goes to the worker with the *longest* match (SMG
   takes any tenant at the deepest node), the least loaded of those on a tie.
2. Multi-turn affinity (sglang#26263). The serving layer passes the text of all
   messages, so a follow-up turn's key extends the previous turn's. When the previous
   turn's whole key is a prefix of this one (a remembered key, checked by hash), the
   request is a continuation and goes to that worker like a cache hit, even when the
   new turn makes the match ratio fall under the threshold. A session key
   (``x-smg-routing-key`` header or the ``user`` field) also sticks a conversation to
   its last worker unless another worker holds a qualifying cache match. An imbalanced
   pool still overrides both.
3. Removed workers' entries are dropped from the trees at once (SMG waits for LRU
   eviction).
"""

from __future__ import annotations

import hashlib
import random
from array import array
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from operator import attrgetter
from typing import Any

from smg.router.policies.base import Policy, RequestInfo, routing_key
from smg.router.policies.config import PolicyConfig
from smg.router.policies.tree_budget import tree_budget
from smg.router.worker import Worker

__all__ = ["CacheAwarePolicy", "TreeFactory"]

TreeFactory = Callable[[str, int], Any]  # (kind "text"|"tokens", page_size) -> RadixTree

_load = attrgetter("load")
_processed = attrgetter("processed")


def _url(worker: Worker) -> str:
    return worker.url


def _stable_digest(request: RequestInfo) -> int | None:
    """A digest of the request's leading tokens (or characters) that every process and
    every gateway replica computes alike (unlike ``hash``, which is salted per process)."""
    if request.token_ids is not None:
        data = array("I", request.token_ids[:64]).tobytes()
    elif request.text:
        data = request.text[:256].encode("utf-8", "surrogatepass")
    else:
        return None
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def _radix_tree(kind: str, page_size: int) -> Any:
    from smg._fast.radix import RadixTree

    return RadixTree(kind=kind, page_size=page_size)


class CacheAwarePolicy(Policy):
    name = "cache_aware"

    def __init__(
        self, config: PolicyConfig = PolicyConfig(), rng: random.Random | None = None, tree_factory: TreeFactory | None = None
    ) -> None:
        super().__init__(rng)
        self.config = config
        self._tree_factory = tree_factory or _radix_tree
        self._trees: dict[tuple[str, str], Any] = {}
        self._sessions: OrderedDict[str, str] = OrderedDict()
        self._recent: OrderedDict[int, str] = OrderedDict()  # hash of a recent key -> worker url
        self.stats: dict[str, int] = dict.fromkeys(("imbalanced", "hit", "continuation", "session", "miss", "no_key"), 0)
        self.evicted = 0
        self.total_budget = config.max_tree_total or tree_budget()  # units in every tree together
        self._inserted = 0  # units inserted since the last maintenance
        self._check_every = max(1, self.total_budget // 16)
        self._tie: int | None = None  # this request's stable tie-break digest (prefix_tiebreak)

    # -- selection -----------------------------------------------------------------
    # Hot path: per-worker work is a few C-level passes (map/attrgetter, comprehensions);
    # per-tenant work only touches the tenants that matched.
    def select(self, workers: Sequence[Worker], request: RequestInfo) -> Worker | None:
        if not workers:
            return None
        kind, key, full_len = self._key(request)
        if self.config.prefix_tiebreak:
            self._tie = _stable_digest(request)
        tree = self.tree(request.model, kind) if key else None
        session = routing_key(request)
        if len(workers) == 1:
            chosen = workers[0]
        else:
            loads = list(map(_load, workers))
            if self._imbalanced(workers, loads):
                self.stats["imbalanced"] += 1
                chosen = self._rebalance(workers, loads)
            elif tree is None:
                self.stats["no_key"] += 1
                chosen = self._pick_miss(workers, loads, {}, {}, 0)
            else:
                _, matches = tree.match_tenants(key)
                chosen = self._pick(workers, loads, matches, key, full_len, session)
        if tree is not None:
            tree.insert(key, chosen.url)
            self._remember_key(key, chosen.url)
            self._inserted += full_len
            if self._inserted > self._check_every:
                self.maintenance()
        if session:
            self._remember(session, chosen.url)
        return chosen

    def _key(self, request: RequestInfo) -> tuple[str, Any, int]:
        tokens = request.token_ids
        if tokens is not None:
            n = len(tokens)
            aligned = n - n % self.config.block_size
            return "tokens", (tokens[:aligned] if aligned else None), n
        text = request.text
        return "text", (text or None), len(text or "")

    def _imbalanced(self, workers: Sequence[Worker], loads: list[int]) -> bool:
        lo, hi = min(loads), max(loads)
        cfg = self.config
        if hi - lo > cfg.balance_abs_threshold and hi > lo * cfg.balance_rel_threshold:
            return True
        overload, spread = cfg.overload_token_usage_threshold, cfg.balance_token_usage_threshold
        if overload >= 1.0 and spread >= 1.0:
            return False  # KV triggers disabled (the default)
        usage = self._usage(workers)
        if usage is None:
            return False
        return (overload < 1.0 and max(usage) > overload) or (spread < 1.0 and max(usage) - min(usage) > spread)

    @staticmethod
    def _usage(workers: Sequence[Worker]) -> list[float] | None:
        reports = [w.load_report for w in workers]
        if None in reports:
            return None
        return [r.token_usage for r in reports]  # type: ignore[union-attr]

    def _rebalance(self, workers: Sequence[Worker], loads: list[int]) -> Worker:
        lo = min(loads)
        tied = [w for w, load in zip(workers, loads) if load == lo]
        if self._usage(workers) is not None:
            # KV pressure counts too: among the least loaded, the emptiest cache.
            return min(tied, key=lambda w: w.load_report.token_usage)
        return min(tied, key=_processed)

    def _pick(
        self,
        workers: Sequence[Worker],
        loads: list[int],
        matches: Mapping[Any, int],
        key: Any,
        full_len: int,
        session: str | None,
    ) -> Worker:
        by_url = {w.url: w for w in workers} if matches or session else {}
        own = {url: m for url, m in matches.items() if m and url in by_url}
        best = max(own.values(), default=0)
        sticky = by_url.get(self._sessions.get(session)) if session else None
        if full_len and best / full_len > self.config.cache_threshold:
            holders = [by_url[url] for url, m in own.items() if m == best]
            if sticky is not None and sticky in holders:
                self.stats["session"] += 1
                return sticky
            self.stats["hit"] += 1
            return self._least_loaded_random(holders)
        if best:
            url = self._recent.get(self._digest(key[:best]))
            if url is not None and own.get(url) == best:
                self.stats["continuation"] += 1
                return by_url[url]
        if sticky is not None:
            self.stats["session"] += 1
            return sticky
        self.stats["miss"] += 1
        return self._pick_miss(workers, loads, own, by_url, full_len)

    def _pick_miss(
        self,
        workers: Sequence[Worker],
        loads: list[int],
        own: Mapping[str, int],
        by_url: Mapping[str, Worker],
        full_len: int,
    ) -> Worker:
        """Least-loaded band; longest significant own partial match, then lower load, then random."""
        limit = min(loads) + self.config.miss_load_slack
        floor = max(full_len * self.config.cache_threshold / 2, 1)
        significant = {url: m for url, m in own.items() if m >= floor and by_url[url].load <= limit}
        if significant:
            best = max(significant.values())
            return self._least_loaded_random([by_url[url] for url, m in significant.items() if m == best])
        return self._least_loaded_random([w for w, load in zip(workers, loads) if load <= limit])

    def _least_loaded_random(self, workers: Sequence[Worker]) -> Worker:
        if len(workers) == 1:
            return workers[0]
        lo = min(map(_load, workers))
        tied = [w for w in workers if w.load == lo]
        if len(tied) == 1:
            return tied[0]
        if self._tie is not None:  # the same choice in every process, whatever the registry order
            return sorted(tied, key=_url)[self._tie % len(tied)]
        return tied[self.rng.randrange(len(tied))]

    @staticmethod
    def _digest(key: Any) -> int:
        return hash(key if isinstance(key, str) else tuple(key))

    def _remember_key(self, key: Any, url: str) -> None:
        recent = self._recent
        digest = self._digest(key)
        recent[digest] = url
        recent.move_to_end(digest)
        if len(recent) > self.config.session_capacity:
            recent.popitem(last=False)

    # -- sessions --------------------------------------------------------------------
    def _remember(self, session: str, url: str) -> None:
        sessions = self._sessions
        sessions[session] = url
        sessions.move_to_end(session)
        while len(sessions) > self.config.session_capacity:
            sessions.popitem(last=False)

    # -- trees and upkeep ------------------------------------------------------------
    def tree(self, model: str | None, kind: str = "text") -> Any:
        """The radix tree for ``model`` and key ``kind`` ("text" or "tokens"), created on demand."""
        ident = (model or "", kind)
        tree = self._trees.get(ident)
        if tree is None:
            page = self.config.block_size if kind == "tokens" else 1
            tree = self._trees[ident] = self._tree_factory(kind, page)
        return tree

    def trees(self) -> dict[tuple[str, str], Any]:
        return dict(self._trees)

    def maintenance(self) -> None:
        """Evict LRU entries until every worker is within ``max_tree_size`` in every tree,
        and every tree and worker together within ``total_budget`` (an equal share each)."""
        self._inserted = 0
        trees = list(self._trees.values())
        for tree in trees:
            self.evicted += tree.evict(self.config.max_tree_size)
        sizes = [tree.tenant_sizes() for tree in trees]
        pairs = sum(len(s) for s in sizes)
        if pairs and sum(sum(s.values()) for s in sizes) > self.total_budget:
            share = self.total_budget // pairs
            for tree in trees:
                self.evicted += tree.evict(share)

    def tree_units(self) -> int:
        """Units (chars or tokens) held by every tree, summed over workers."""
        return sum(sum(tree.tenant_sizes().values()) for tree in list(self._trees.values()))

    def bounds(self) -> list[tuple[str, int, int]]:
        """(name, in use, bound) of everything this policy keeps (smg.http.bounds)."""
        return [("cache_aware_tree_units", self.tree_units(), self.total_budget),
                ("cache_aware_sessions", len(self._sessions), self.config.session_capacity),
                ("cache_aware_recent_keys", len(self._recent), self.config.session_capacity)]

    def on_worker_removed(self, worker: Worker) -> None:
        for tree in self._trees.values():
            tree.remove_tenant(worker.url)
        for table in (self._sessions, self._recent):
            stale = [key for key, url in table.items() if url == worker.url]
            for key in stale:
                del table[key]

    def reset(self) -> None:
        """Forget every cached prefix and session (the workers' caches were flushed)."""
        self._trees.clear()
        self._sessions.clear()
        self._recent.clear()
