"""The simulated prefix KV cache: full blocks of token ids, chained by hash, LRU-evicted.

A block is ``kv_block_size`` token ids; its hash covers its parent's hash and its own
tokens, so equal hashes mean equal prefixes (as in vLLM's and SGLang's block hashing).
``match`` counts the cached prefix of a prompt; ``insert`` stores the full blocks of a
sequence; capacity is in tokens and the least recently used blocks go first. A chain is
touched leaf first, so its root is the most recent and eviction trims chains from the
leaves. Every store and removal becomes a ``KvEvent``; the engine batches them into
``KvEventBatch`` objects for ``SubscribeKvEvents``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

__all__ = ["KvBlock", "KvEvent", "KvEventBatch", "PrefixCache", "block_hashes"]

_ROOT = 0


@dataclass(frozen=True)
class KvBlock:
    block_hash: int  # signed 64-bit, as the wire's int64
    token_ids: tuple[int, ...]
    parent_hash: int | None


@dataclass(frozen=True)
class KvEvent:
    """One cache change: ``kind`` is "stored", "removed" or "cleared"."""

    event_id: int
    kind: str
    blocks: tuple[KvBlock, ...] = ()  # stored: one chain, parent first
    block_hashes: tuple[int, ...] = ()  # removed
    block_size: int = 0


@dataclass(frozen=True)
class KvEventBatch:
    sequence_number: int
    timestamp: float
    events: tuple[KvEvent, ...] = field(default_factory=tuple)


def block_hashes(token_ids: list[int], block_size: int, known: list[int] = ()) -> list[int]:
    """Chained hashes of the full blocks of ``token_ids`` (a partial tail is not a block).

    ``known``: hashes of leading blocks already computed (a prompt's, when hashing the
    prompt + output). A block's hash is Python's hash of (parent hash, *tokens): ints
    hash the same in every process (no hash randomization), and it is a signed 64-bit
    value, as the wire's int64 wants.
    """
    out = list(known)
    parent = out[-1] if out else _ROOT
    for start in range(len(out) * block_size, len(token_ids) - block_size + 1, block_size):
        parent = hash((parent, *token_ids[start : start + block_size]))
        out.append(parent)
    return out


class PrefixCache:
    """Block-granular prefix cache with a token capacity and LRU eviction."""

    def __init__(self, block_size: int, capacity_tokens: int) -> None:
        self.block_size = block_size
        self.capacity_blocks = max(0, capacity_tokens // block_size)
        # hash -> block; order = recency (last = most recent)
        self._blocks: OrderedDict[int, KvBlock] = OrderedDict()
        self._next_event_id = 1
        self.pending: list[KvEvent] = []  # drained by the engine into batches
        self.hits = 0  # prompt tokens found cached
        self.lookups = 0  # prompt tokens looked up

    def __len__(self) -> int:
        return len(self._blocks)

    @property
    def cached_tokens(self) -> int:
        return len(self._blocks) * self.block_size

    def match(self, token_ids: list[int], hashes: list[int] | None = None) -> int:
        """Length in tokens of the cached prefix of ``token_ids``; touches what matched."""
        hashes = block_hashes(token_ids, self.block_size) if hashes is None else hashes
        n = 0
        for h in hashes:
            if h not in self._blocks:
                break
            n += 1
        for h in reversed(hashes[:n]):
            self._blocks.move_to_end(h)
        self.lookups += len(token_ids)
        self.hits += n * self.block_size
        return n * self.block_size

    def insert(self, token_ids: list[int], hashes: list[int] | None = None) -> None:
        """Store every full block of ``token_ids``; evict LRU blocks beyond capacity."""
        if self.capacity_blocks == 0:
            return
        hashes = block_hashes(token_ids, self.block_size) if hashes is None else hashes
        hashes = hashes[: self.capacity_blocks]
        new: list[KvBlock] = []
        parent: int | None = None
        bs = self.block_size
        for i, h in enumerate(hashes):
            if h not in self._blocks:
                block = KvBlock(h, tuple(token_ids[i * bs : (i + 1) * bs]), parent)
                self._blocks[h] = block
                new.append(block)
            parent = h
        for h in reversed(hashes):
            self._blocks.move_to_end(h)
        if new:
            self._emit("stored", blocks=tuple(new), block_size=bs)
        self._evict()

    def clear(self) -> None:
        self._blocks.clear()
        self._emit("cleared")

    def _evict(self) -> None:
        removed: list[int] = []
        while len(self._blocks) > self.capacity_blocks:
            h, _ = self._blocks.popitem(last=False)
            removed.append(h)
        if removed:
            self._emit("removed", block_hashes=tuple(removed))

    def _emit(self, kind: str, **kw) -> None:
        self.pending.append(KvEvent(self._next_event_id, kind, **kw))
        self._next_event_id += 1
