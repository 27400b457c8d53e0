"""Router test helpers: worker lists, and a stand-in radix tree.

``StandInRadixTree`` is a tiny uncompressed multi-tenant trie with the smg._fast.radix
API, used while that kernel does not exist yet; the ``tree_factory`` fixture in
``conftest.py`` prefers the real kernel whenever it can be imported.
"""

from __future__ import annotations

import heapq
import itertools
import random

from smg.router import Worker


def make_workers(n: int, **kwargs) -> list[Worker]:
    return [Worker(f"http://127.0.0.1:{9000 + i}", **kwargs) for i in range(n)]


class _Node:
    __slots__ = ("children", "tenants", "parent", "edge")

    def __init__(self, parent=None, edge=None):
        self.children = {}
        self.tenants = {}
        self.parent = parent
        self.edge = edge


class StandInRadixTree:
    def __init__(self, kind="text", page_size=1):
        assert kind in ("text", "tokens")
        self.kind, self.page_size = kind, page_size
        self._root = _Node()
        self._sizes = {}
        self._clock = itertools.count(1)

    def _align(self, n):
        return n - n % self.page_size

    def match_tenants(self, key):
        n = self._align(len(key))
        node, depth, found = self._root, 0, {}
        while depth < n:
            child = node.children.get(key[depth])
            if child is None:
                break
            depth += 1
            node = child
            for t in node.tenants:
                found[t] = depth
        return len(key), {t: self._align(d) for t, d in found.items() if self._align(d) > 0}

    def match(self, key):
        _, found = self.match_tenants(key)
        if not found:
            return 0, None
        tenant = max(found, key=found.get)
        return found[tenant], tenant

    def insert(self, key, tenant):
        n = self._align(len(key))
        stamp = next(self._clock)
        node = self._root
        for i in range(n):
            child = node.children.get(key[i])
            if child is None:
                child = node.children[key[i]] = _Node(node, key[i])
            if tenant not in child.tenants:
                self._sizes[tenant] = self._sizes.get(tenant, 0) + 1
            child.tenants[tenant] = stamp
            node = child
        self._sizes.setdefault(tenant, 0)

    def match_insert(self, key, tenant):
        _, found = self.match_tenants(key)
        self.insert(key, tenant)
        return found

    def _nodes(self):
        stack = [self._root]
        while stack:
            node = stack.pop()
            stack.extend(node.children.values())
            if node is not self._root:
                yield node

    def _drop(self, node, tenant):
        del node.tenants[tenant]
        self._sizes[tenant] -= 1
        if not node.tenants and not node.children:
            del node.parent.children[node.edge]

    def evict(self, max_size_per_tenant):
        evicted = 0
        for tenant, size in list(self._sizes.items()):
            if size <= max_size_per_tenant:
                continue
            leaves = [
                (n.tenants[tenant], id(n), n)
                for n in self._nodes()
                if tenant in n.tenants and not any(tenant in c.tenants for c in n.children.values())
            ]
            heapq.heapify(leaves)
            while self._sizes[tenant] > max_size_per_tenant and leaves:
                _, _, node = heapq.heappop(leaves)
                parent = node.parent
                self._drop(node, tenant)
                evicted += 1
                if parent is not self._root and not any(tenant in c.tenants for c in parent.children.values()):
                    heapq.heappush(leaves, (parent.tenants[tenant], id(parent), parent))
        return evicted

    def remove_tenant(self, tenant):
        for node in sorted(self._nodes(), key=lambda n: -self._depth(n)):
            if tenant in node.tenants:
                self._drop(node, tenant)
        self._sizes.pop(tenant, None)

    @staticmethod
    def _depth(node):
        d = 0
        while node.parent is not None:
            node, d = node.parent, d + 1
        return d

    def tenant_size(self, tenant):
        return self._sizes.get(tenant, 0)

    def tenants(self):
        return [t for t in self._sizes]


_WORDS = (
    "cache route token prefix model worker latency batch stream queue kernel tensor "
    "python rust gateway prompt answer explain summary table chart data error retry "
    "health load policy radix tree hash ring session user history turn reply"
).split()

SYSTEM_PROMPTS = (
    "You are a helpful assistant that answers concisely.",
    "You are a senior software engineer reviewing code for correctness and style.",
    "You are a translator. Translate the user's text into French, keeping the tone.",
)


def chat_prompts(n: int, seed: int = 0, system: str | None = None) -> list[str]:
    """``n`` distinct chat routing texts: a system prompt and a random user question."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        sys_prompt = system or SYSTEM_PROMPTS[rng.randrange(len(SYSTEM_PROMPTS))]
        question = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(8, 40)))
        out.append(f"{sys_prompt} #{i}: {question}?")
    return out
