"""Multi-tenant compressed prefix tree for cache-aware routing: the specification.

One tree is shared by all tenants (workers). Keys are text (``str``; lengths in
characters) or token ids (``list[int]``, ``array('I')`` or any uint32 buffer; lengths in
tokens). Semantics, which the compiled twin ``radix_c`` follows exactly:

- Each node holds an edge (never empty) and ``{tenant: epoch}`` for the tenants whose
  inserted keys pass through it. A tenant present at a node is present at its parent.
- Epochs come from a counter bumped by every insert; an insert stamps every node on its
  path for its tenant. Matches never change the tree or the epochs.
- ``match`` returns the most recent tenant (largest epoch) at the deepest node the key
  reaches, mid-edge included. ``match_tenants``/``match_insert`` return every tenant's own
  match length: the key units through the deepest node on the key's path that holds it.
- Text is compared by character (lone surrogates included); the compiled tree stores
  UTF-8 and splits edges only between characters, so both trees have the same shape.
- Token trees with ``page_size`` p look at whole pages only: a key is cut to
  ``len // p * p`` tokens for matching and inserting, and edges split only at page
  boundaries; ``match_tenants`` still reports the key's full length.
- Sizes count key units. A tenant's size is the sum of the edge lengths of its nodes.
- ``evict(budget)``: while a tenant holds more than ``budget`` units, take it off its
  leaf (a node where none of the children holds it) with the oldest epoch; a node left
  with no tenant is deleted. Leaves of one tenant never share an epoch, so the order is
  fully determined. ``remove_tenant`` takes a tenant off every node.
- Registering: any insert (even of an empty key) makes the tenant known to ``tenants()``
  and ``tenant_sizes()`` until ``remove_tenant`` or ``clear``.

API: ``insert``, ``match``, ``match_tenants``, ``match_insert``, ``evict``,
``remove_tenant``, ``tenant_size``, ``tenant_sizes``, ``tenants``, ``node_count``,
``clear``; for measurements and tests also ``stored_bytes`` (UTF-8 / 4 bytes per token),
``memory_bytes`` and ``check`` (verifies the invariants). Every method is thread-safe.

This twin walks the whole tree to evict (SMG's algorithm); the compiled tree keeps
per-tenant lists of leaves and evicts in O(evicted), without the GIL.
"""

from __future__ import annotations

import heapq
import sys
import threading
from array import array
from collections.abc import Sequence
from typing import Literal

__all__ = ["NOGIL_BYTES", "RadixTree"]

#: Keys of at least this many bytes run without the GIL in the compiled tree.
NOGIL_BYTES = 1024

Key = str | Sequence[int]


class _Node:
    __slots__ = ("edge", "kids", "parent", "tenants")

    def __init__(self, edge: str | bytes, parent: _Node | None) -> None:
        self.edge = edge
        self.parent = parent
        self.kids: dict[str | bytes, _Node] = {}
        self.tenants: dict[str, int] = {}


class RadixTree:
    """Multi-tenant prefix tree; ``kind`` is "text" or "tokens"."""

    def __init__(self, kind: Literal["text", "tokens"] = "text", page_size: int = 1) -> None:
        if kind not in ("text", "tokens"):
            raise ValueError(f"kind must be 'text' or 'tokens', not {kind!r}")
        if page_size < 1:
            raise ValueError(f"page_size must be >= 1, not {page_size}")
        if kind == "text" and page_size != 1:
            raise ValueError("page_size applies to token trees only")
        self._text = kind == "text"
        self._page = page_size
        self._unit = 1 if self._text else 4  # edge items per key unit
        self._align = 1 if self._text else 4 * page_size  # edge items per page
        self._lock = threading.Lock()
        self._root = _Node("" if self._text else b"", None)
        self._sizes: dict[str, int] = {}
        self._clock = 0
        self._nodes = 0

    @property
    def kind(self) -> str:
        return "text" if self._text else "tokens"

    @property
    def page_size(self) -> int:
        return self._page

    # ---- keys --------------------------------------------------------------------------

    def _seq(self, key: Key) -> tuple[str | bytes, int]:
        """(what the tree walks: str, or native uint32 bytes cut to pages; len(key))."""
        if self._text:
            if not isinstance(key, str):
                raise TypeError(f"a text tree takes str keys, not {type(key).__name__}")
            return key, len(key)
        if isinstance(key, str):
            raise TypeError(
                "a token tree takes token ids (list[int], array('I'), uint32 buffer), not str"
            )
        data = None
        try:
            view = memoryview(key)  # type: ignore[arg-type]
        except TypeError:
            view = None
        if view is not None and view.itemsize == 4 and view.format.lstrip("@=<") in ("I", "L"):
            data = view.tobytes()
        if data is None:
            data = array("I", key).tobytes()
        n = len(data) // 4
        return data[: (n - n % self._page) * 4], n

    def _common(self, seq: str | bytes, pos: int, edge: str | bytes) -> int:
        """Items of edge matching seq[pos:], rounded down to whole pages."""
        n = min(len(seq) - pos, len(edge))
        if seq.startswith(edge[:n], pos):  # type: ignore[arg-type]
            m = n
        else:
            lo, hi = 0, n  # edge[:lo] matches, edge[:hi] does not
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if seq.startswith(edge[:mid], pos):  # type: ignore[arg-type]
                    lo = mid
                else:
                    hi = mid
            m = lo
        return m - m % self._align

    # ---- the descent -------------------------------------------------------------------

    def _walk(
        self, seq: str | bytes, lens: dict[str, int] | None, tenant: str | None
    ) -> tuple[int, _Node | None]:
        """Descend along seq; fill lens (before inserting); insert for tenant if given."""
        node, pos, done, deepest, epoch = self._root, 0, 0, None, 0
        if tenant is not None:
            self._clock += 1
            epoch = self._clock
            self._sizes.setdefault(tenant, 0)
        while pos < len(seq):
            c = node.kids.get(seq[pos : pos + self._align])
            if c is None:
                break
            m = self._common(seq, pos, c.edge)
            mu = m // self._unit
            if lens is not None:
                for t in c.tenants:
                    lens[t] = done + mu
            deepest, done, pos = c, done + mu, pos + m
            if m < len(c.edge):
                if tenant is None:
                    break
                c = self._split(c, m)
            if tenant is not None:
                self._attach(c, tenant, epoch)
            node = c
        if tenant is not None and pos < len(seq):
            leaf = _Node(seq[pos:], node)
            node.kids[seq[pos : pos + self._align]] = leaf
            self._nodes += 1
            self._attach(leaf, tenant, epoch)
        return done, deepest

    def _split(self, c: _Node, m: int) -> _Node:
        parent = c.parent
        assert parent is not None
        mid = _Node(c.edge[:m], parent)
        mid.tenants = dict(c.tenants)
        parent.kids[c.edge[: self._align]] = mid
        c.edge = c.edge[m:]
        c.parent = mid
        mid.kids[c.edge[: self._align]] = c
        self._nodes += 1
        return mid

    def _attach(self, n: _Node, tenant: str, epoch: int) -> None:
        if tenant not in n.tenants:
            self._sizes[tenant] += len(n.edge) // self._unit
        n.tenants[tenant] = epoch

    # ---- the API -----------------------------------------------------------------------

    def insert(self, key: Key, tenant: str) -> None:
        """Insert key for tenant (an empty key just registers the tenant)."""
        _check_tenant(tenant)
        seq, _ = self._seq(key)
        with self._lock:
            self._walk(seq, None, tenant)

    def match(self, key: Key) -> tuple[int, str | None]:
        """(matched length in key units, most recent tenant at the deepest matched node)."""
        seq, _ = self._seq(key)
        with self._lock:
            done, deepest = self._walk(seq, None, None)
            if not done or deepest is None:
                return 0, None
            return done, max(deepest.tenants, key=deepest.tenants.__getitem__)

    def match_tenants(self, key: Key) -> tuple[int, dict[str, int]]:
        """(len(key) in key units, {tenant: its own matched length} for every match > 0)."""
        seq, full = self._seq(key)
        lens: dict[str, int] = {}
        with self._lock:
            self._walk(seq, lens, None)
        return full, lens

    def match_insert(self, key: Key, tenant: str) -> dict[str, int]:
        """Every tenant's matched length before the insert, then insert key for tenant."""
        _check_tenant(tenant)
        seq, _ = self._seq(key)
        lens: dict[str, int] = {}
        with self._lock:
            self._walk(seq, lens, tenant)
        return lens

    def evict(self, max_size_per_tenant: int) -> int:
        """Drop each tenant's least recently used leaves while it holds more than
        ``max_size_per_tenant`` units; returns the units dropped."""
        if max_size_per_tenant < 0:
            raise ValueError("max_size_per_tenant must be >= 0")
        with self._lock:
            over = {t for t, s in self._sizes.items() if s > max_size_per_tenant}
            if not over:
                return 0
            heaps: dict[str, list[tuple[int, int, _Node]]] = {t: [] for t in over}
            for n in self._nodes_below_root():
                for t in over.intersection(n.tenants):
                    if not any(t in k.tenants for k in n.kids.values()):
                        heaps[t].append((n.tenants[t], id(n), n))
            evicted = 0
            for t, heap in heaps.items():
                heapq.heapify(heap)
                while self._sizes[t] > max_size_per_tenant and heap:
                    _, _, n = heapq.heappop(heap)
                    evicted += self._drop(n, t)
                    p = n.parent
                    if (
                        p is not self._root
                        and p is not None
                        and t in p.tenants
                        and not any(t in k.tenants for k in p.kids.values())
                    ):
                        heapq.heappush(heap, (p.tenants[t], id(p), p))
            return evicted

    def _drop(self, n: _Node, tenant: str) -> int:
        """Take tenant off n; delete n when no tenant is left. Returns units."""
        del n.tenants[tenant]
        units = len(n.edge) // self._unit
        self._sizes[tenant] -= units
        if not n.tenants and not n.kids and n.parent is not None:
            del n.parent.kids[n.edge[: self._align]]
            self._nodes -= 1
        return units

    def remove_tenant(self, tenant: str) -> None:
        """Forget tenant everywhere; unknown tenants are ignored."""
        with self._lock:
            if tenant not in self._sizes:
                return
            for n in reversed(self._nodes_below_root()):  # children before parents
                if tenant in n.tenants:
                    self._drop(n, tenant)
            del self._sizes[tenant]

    def tenant_size(self, tenant: str) -> int:
        """Units stored for tenant (0 if unknown)."""
        return self._sizes.get(tenant, 0)

    def tenant_sizes(self) -> dict[str, int]:
        with self._lock:
            return dict(self._sizes)

    def tenants(self) -> list[str]:
        """Live tenants, sorted by name."""
        with self._lock:
            return sorted(self._sizes)

    def node_count(self) -> int:
        return self._nodes

    def stored_bytes(self) -> int:
        """Edge bytes held (UTF-8 for text, 4 per token)."""
        with self._lock:
            nodes = self._nodes_below_root()
            if self._text:
                return sum(len(str(n.edge).encode("utf-8", "surrogatepass")) for n in nodes)
            return sum(len(n.edge) for n in nodes)

    def memory_bytes(self) -> int:
        """Rough heap bytes of the nodes (sys.getsizeof of each part)."""
        with self._lock:
            return sum(
                sys.getsizeof(n) + sys.getsizeof(n.edge) + sys.getsizeof(n.kids)
                + sys.getsizeof(n.tenants)
                for n in self._nodes_below_root()
            )

    def clear(self) -> None:
        """Drop every node and tenant."""
        with self._lock:
            self._root = _Node("" if self._text else b"", None)
            self._sizes = {}
            self._nodes = 0

    def check(self) -> None:
        """Verify the tree's invariants (for tests); AssertionError names a broken one."""
        with self._lock:
            nodes = self._nodes_below_root()
            assert len(nodes) == self._nodes, "node count"
            sizes = dict.fromkeys(self._sizes, 0)
            for n in nodes:
                assert n.edge and n.tenants, "empty edge or tenant-less node"
                assert len(n.edge) % self._align == 0, "edge not page-aligned"
                assert n.parent is not None and n.parent.kids[n.edge[: self._align]] is n
                for t in n.tenants:
                    assert n.parent is self._root or t in n.parent.tenants, "tenant subset"
                    sizes[t] += len(n.edge) // self._unit
            assert sizes == self._sizes, "tenant sizes"

    def _nodes_below_root(self) -> list[_Node]:
        """Every node but the root, parents before children."""
        out: list[_Node] = []
        stack = list(self._root.kids.values())
        while stack:
            n = stack.pop()
            out.append(n)
            stack.extend(n.kids.values())
        return out


def _check_tenant(tenant: object) -> None:
    if not isinstance(tenant, str):
        raise TypeError(f"tenant must be a str, not {type(tenant).__name__}")
