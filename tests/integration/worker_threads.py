"""Reference gRPC workers served from a background thread (own event loop) for tests."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from smg.engine.config import WorkerConfig
from smg.engine.core import Engine
from smg.engine.grpc import start_grpc_server
from smg.tokenizer import load_tokenizer

_TOKENIZERS: dict[str, Any] = {}


def tokenizer(name: str) -> Any:
    if name not in _TOKENIZERS:
        _TOKENIZERS[name] = load_tokenizer(name)
    return _TOKENIZERS[name]


class GrpcWorkerThread:
    """``start()`` -> grpc://127.0.0.1:PORT; ``engine`` is the live Engine (read-only use)."""

    def __init__(self, **config: Any) -> None:
        self.config = WorkerConfig(host="127.0.0.1", port=0, transport="grpc", **config)
        self.engine: Engine | None = None
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True, name="grpc-worker")

    def start(self) -> str:
        self._thread.start()
        if not self._ready.wait(30):
            raise TimeoutError("worker did not start")
        if self._error:
            raise RuntimeError("worker failed to start") from self._error
        return self.url

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        try:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self.engine = Engine(self.config, tokenizer(self.config.tokenizer))
            await self.engine.start()
            server, port = await start_grpc_server(self.engine, self.config)
            self.url = f"grpc://127.0.0.1:{port}"
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await server.stop(grace=0.2)
            await self.engine.close()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:
        """Poll ``predicate(engine)`` until true (a condition wait, not a timing test)."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.engine):
                return True
            time.sleep(0.01)
        return False
