"""Reference workers in PD roles for the PD tests: each in a thread with its own loop.

``PDWorker`` records what its engine was asked (every ``GenerateInput`` and every abort)
so tests can check the rooms and params each leg carried, and which legs were aborted.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import threading
import time
from typing import Any

from smg.engine.config import WorkerConfig
from smg.engine.core import Engine
from smg.engine.grpc import start_grpc_server


@functools.lru_cache(maxsize=None)
def tokenizer(name: str = "deepseek") -> Any:
    from smg.tokenizer import load_tokenizer

    return load_tokenizer(name)


class PDWorker:
    """``start()`` -> its url (http://... or grpc://...)."""

    def __init__(self, transport: str = "http", **config: Any) -> None:
        config.setdefault("tokenizer", "deepseek")
        config.setdefault("pd_timeout_s", 2.0)
        if config.get("role") == "prefill":
            config.setdefault("bootstrap_port", 0)
        self.config = WorkerConfig(host="127.0.0.1", port=0, transport=transport, **config)
        self.engine: Engine | None = None
        self.url = ""
        self.inputs: list[Any] = []  # GenerateInput of every engine call, in order
        self.aborted: list[str] = []  # request ids the worker was told to abort
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True, name="pd-worker")

    @property
    def bootstrap_port(self) -> int | None:
        return self.engine.pd.port if self.engine is not None else None

    @property
    def active(self) -> int:
        """Requests the engine still holds."""
        return len(self.engine._requests)

    def start(self) -> str:
        self._thread.start()
        if not self._ready.wait(30):
            raise TimeoutError("worker did not start")
        if self._error is not None:
            raise RuntimeError("worker failed to start") from self._error
        return self.url

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:
        """Poll ``predicate(self)`` until true (a condition wait, not a timing test)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.01)
        return False

    def _record(self, engine: Engine) -> None:
        generate, abort = engine.generate, engine.abort

        def recording_generate(inp):
            self.inputs.append(inp)
            return generate(inp)

        def recording_abort(rid: str) -> bool:
            self.aborted.append(rid)
            return abort(rid)

        engine.generate = recording_generate  # type: ignore[method-assign]
        engine.abort = recording_abort  # type: ignore[method-assign]

    async def _serve(self) -> None:
        try:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self.engine = Engine(self.config, tokenizer(self.config.tokenizer))
            self._record(self.engine)
            await self.engine.start()
            if self.config.transport == "grpc":
                server, port = await start_grpc_server(self.engine, self.config)
                self.url = f"grpc://127.0.0.1:{port}"
                task = None
            else:
                from smg.engine.http.serve import run_http

                got: asyncio.Future[int] = self._loop.create_future()
                task = asyncio.ensure_future(run_http(self.engine, self.config, on_ready=got.set_result))
                done, _ = await asyncio.wait((got, task), return_when=asyncio.FIRST_COMPLETED)
                if got not in done:
                    task.result()
                self.url = f"http://127.0.0.1:{got.result()}"
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            if task is None:
                await server.stop(grace=0.2)
            else:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            await self.engine.close()


def start_all(workers: list[PDWorker]) -> list[str]:
    return [w.start() for w in workers]


class CrashingWorker:
    """A worker that dies mid-request: it reads each POST, waits until ``until(body)``
    holds (say, the partner leg with the same room reached its worker), then drops the
    connection. GETs (model discovery, health) get a plain answer."""

    def __init__(self, until) -> None:
        import socket

        self.until = until
        self.requests = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.url = "http://127.0.0.1:%d" % self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._main, daemon=True, name="crashing-worker")

    def start(self) -> str:
        self._thread.start()
        return self.url

    def _main(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            if data.startswith(b"GET "):  # discovery and health: a worker like any other
                body = b'{"object": "list", "data": [{"id": "smg-reference", "object": "model"}]}'
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
                             b"content-length: %d\r\n\r\n" % len(body) + body)
                return
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            while len(body) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                body += chunk
            self.requests += 1
            request = json.loads(body)
            deadline = time.monotonic() + 10
            while not self.until(request) and time.monotonic() < deadline:
                time.sleep(0.005)

    def stop(self) -> None:
        self._sock.close()
