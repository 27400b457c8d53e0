"""How much the cache-aware trees may hold in all, when ``--max-tree-total-size`` is 0:
5% of the memory this process may use (the machine's, or its cgroup's limit when lower),
at 4 bytes a unit (a token id is 4 bytes; a character of text about 1-2 with the tree's
node overhead, so text trees stay well under the share). The per-worker
``--max-tree-size`` (2^26, the Rust gateway's default) still applies besides; on a small
machine the total is what binds.
"""

from __future__ import annotations

import os

__all__ = ["BYTES_PER_UNIT", "MEMORY_SHARE", "machine_memory", "tree_budget"]

MEMORY_SHARE = 0.05
BYTES_PER_UNIT = 4
_FALLBACK = 8 * 2**30  # bytes assumed when the machine does not say


def machine_memory() -> int:
    """Bytes of memory this process may use: physical memory, or the cgroup's limit."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        total = _FALLBACK
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < total:
            total = int(text)
    return total if total > 0 else _FALLBACK


def tree_budget(memory: int | None = None) -> int:
    """Units (chars or tokens) the trees may hold together on a machine with ``memory`` bytes."""
    return max(1 << 16, int((machine_memory() if memory is None else memory) * MEMORY_SHARE) // BYTES_PER_UNIT)
