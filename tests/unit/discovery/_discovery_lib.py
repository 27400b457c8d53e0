"""Helpers of the discovery tests (imported by name; conftest modules are not)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from smg.http.state import AppState

__all__ = ["discovered", "until"]


def discovered(state: AppState) -> set[tuple[str, str]]:
    """(url, role) of the discovered workers taking traffic."""
    return {(w.url, w.role.value) for w in state.registry.all() if w.source == "discovery" and w.status.value == "ready"}


async def until(predicate: Callable[[], bool], timeout: float, what: str = "condition") -> None:
    """Poll ``predicate`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.02)
