"""Router test fixtures: the radix tree factory cache_aware uses."""

from __future__ import annotations

import importlib.util

import pytest
from _router_testlib import StandInRadixTree


def _real_radix_available() -> bool:
    try:
        return importlib.util.find_spec("smg._fast.radix") is not None
    except ImportError:
        return False


REAL_RADIX = _real_radix_available()


@pytest.fixture
def tree_factory():
    """``(kind, page_size) -> tree``: the real smg._fast.radix when present, else a stand-in."""
    if REAL_RADIX:
        from smg._fast.radix import RadixTree

        return lambda kind, page: RadixTree(kind=kind, page_size=page)
    return lambda kind, page: StandInRadixTree(kind=kind, page_size=page)
