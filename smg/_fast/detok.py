"""Incremental detokenizer (byte table): the implementation this process uses.

API and semantics: :mod:`smg._fast.detok_py` (the specification). ``IMPLEMENTATION`` is
"cython" or "python" (``SMG_NO_EXTENSIONS=1``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smg._fast import load

if TYPE_CHECKING:
    from smg._fast.detok_py import PRIME_IDS, DetokTable, Detokenizer, detokenize_batch
else:
    _impl = load("detok")
    PRIME_IDS = _impl.PRIME_IDS
    DetokTable = _impl.DetokTable
    Detokenizer = _impl.Detokenizer
    detokenize_batch = _impl.detokenize_batch

IMPLEMENTATION = "python" if load("detok").__name__.endswith("_py") else "cython"

__all__ = ["IMPLEMENTATION", "PRIME_IDS", "DetokTable", "Detokenizer", "detokenize_batch"]
