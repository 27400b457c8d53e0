"""The HTTP/1.1 upstream client's tests run on both event loops (the gateway runs on uvloop)."""

from __future__ import annotations

import asyncio

import uvloop


def pytest_asyncio_loop_factories(config, item):
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
