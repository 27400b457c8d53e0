"""``run_http(engine, config)``: serve the worker's HTTP app with uvicorn until cancelled.

uvicorn with httptools and the running (uvloop) event loop, no access log, no signal
handlers of its own (the ``smg worker`` command owns signals and cancels this coroutine).
The socket is bound here, so ``port=0`` works and the ready line names the real port::

    smg worker ready: http://127.0.0.1:30001 model=smg-reference
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from smg.engine.http.app import create_app

__all__ = ["run_http"]


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the caller owns signals; cancellation stops us


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


async def run_http(
    engine: Any, config: Any, *, on_ready: Callable[[int], object] | None = None
) -> None:
    """Serve ``engine`` on ``config.host:config.port`` until cancelled.

    Once listening it prints the ready line and calls ``on_ready(port)`` (the bound
    port: with ``port=0`` the OS picks it).
    """
    app = create_app(engine)
    sock = _bind(config.host, config.port)
    host, port = sock.getsockname()[:2]
    uv = uvicorn.Config(
        app,
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        backlog=4096,
        timeout_graceful_shutdown=1,
        timeout_keep_alive=30,
    )
    server = _Server(uv)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # startup failed: raise its error
                return
            await asyncio.sleep(0.005)
        shown = f"[{host}]" if ":" in host else host
        print(f"smg worker ready: http://{shown}:{port} model={engine.config.model}", flush=True)
        if on_ready is not None:
            on_ready(port)
        await asyncio.shield(task)
    except asyncio.CancelledError:
        server.should_exit = True
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, timeout=5)
        raise
    finally:
        sock.close()
        sys.stdout.flush()
