"""``run_http(engine, config)``: serve the worker's HTTP app with uvicorn until cancelled.

uvicorn with httptools and the running (uvloop) event loop, no access log, no signal
handlers of its own (the ``smg worker`` command owns signals and cancels this coroutine).
The socket is bound here, so ``port=0`` works and the ready line names the real port::

    smg worker ready: http://127.0.0.1:30001 model=smg-reference
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from smg.engine.http.app import create_app

__all__ = ["run_http"]


class _DroppedOnPurpose(logging.Filter):
    """Hide uvicorn's complaint about an unfinished response: the injected
    ``disconnect_mid_stream`` fault ends responses that way on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("ASGI callable returned without completing")


_FILTER = _DroppedOnPurpose()


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the caller owns signals; cancellation stops us


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on such sockets' transports
    # (without it a response's header and body writes meet Nagle + delayed ACK: 40 ms)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
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
    logger = logging.getLogger("uvicorn.error")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
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
