"""Multi-tenant prefix tree for cache-aware routing: the implementation this process uses.

API and semantics: :mod:`smg._fast.radix_py` (the specification). ``IMPLEMENTATION`` is
"cython" or "python" (``SMG_NO_EXTENSIONS=1``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smg._fast import load

if TYPE_CHECKING:
    from smg._fast.radix_py import NOGIL_BYTES, RadixTree
else:
    _impl = load("radix")
    NOGIL_BYTES = _impl.NOGIL_BYTES
    RadixTree = _impl.RadixTree

IMPLEMENTATION = "python" if load("radix").__name__.endswith("_py") else "cython"

__all__ = ["IMPLEMENTATION", "NOGIL_BYTES", "RadixTree"]
