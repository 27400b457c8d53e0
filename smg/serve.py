"""Serving the gateway app: uvicorn (default: uvloop, with smg's own HTTP/1.1 protocol,
:class:`~smg.http.h1server.H1Protocol`, on httptools' parser) or hypercorn.

- :func:`run` serves until SIGINT/SIGTERM, then stops accepting, gives in-flight
  requests ``shutdown_grace_period_secs`` and runs the app's shutdown (closing the
  upstream pool and background loops).
- :class:`ServerThread` serves an app on a free loopback port in a background thread
  (tests, examples, benchmarks): ``with ServerThread(app) as url: ...``.

Both bind the listening socket first, so the URL is known before the server starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import signal
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from starlette.types import ASGIApp

from smg.config import GatewayConfig
from smg.security.tls import ServerTls, server_tls
from smg.observability.logs import setup_logging

if TYPE_CHECKING:
    from smg.http.state import AppState

__all__ = ["ServerThread", "StartupError", "bind_socket", "run", "serve"]

log = logging.getLogger(__name__)

ServerName = Literal["uvicorn", "hypercorn"]


class StartupError(Exception):
    """The gateway could not start (a worker's tokenizer that cannot be loaded, a bad
    PD set-up ...): its message is one line for the user."""


def bind_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket (``port`` 0: one the OS picks). With ``reuse_port`` several
    processes bind the same port and the kernel spreads connections over them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP (not 0): uvloop sets TCP_NODELAY on accepted connections only then
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve(
    app: ASGIApp,
    sock: socket.socket,
    *,
    server: ServerName = "uvicorn",
    shutdown: asyncio.Event,
    grace_period: float = 30.0,
    log_level: str = "info",
    tls: ServerTls | None = None,
    body_read_timeout: float | None = None,
) -> None:
    """Serve ``app`` on ``sock`` until ``shutdown`` is set, then drain and stop. With
    ``tls``, over TLS (and requiring client certificates when ``tls.client_ca`` is set)."""
    tls_options = _uvicorn_tls(tls) if server == "uvicorn" else {}
    if server == "uvicorn":
        import uvicorn

        from smg.http.h1server import H1Protocol

        config = uvicorn.Config(
            app,
            loop="none",
            http=H1Protocol,
            ws="none",  # no WebSocket routes
            lifespan="on",
            # smg's own logging set-up (setup_logging) formats uvicorn's records too; its
            # start/stop chatter shows at debug level only (smg prints its own banner)
            log_config=None,
            log_level="debug" if log_level == "debug" else "warning",
            access_log=False,
            proxy_headers=False,  # no X-Forwarded-* rewriting on the hot path
            timeout_graceful_shutdown=grace_period,
            server_header=False,
            date_header=False,
            **tls_options,
        )
        if body_read_timeout is not None:  # smg.http.h1limits (issue 15)
            config.smg_body_read_timeout = body_read_timeout  # type: ignore[attr-defined]
        srv = uvicorn.Server(config)

        async def stop_when_asked() -> None:
            await shutdown.wait()
            await _drain(app, srv, grace_period)
            srv.should_exit = True

        srv.handle_exit = _drain_on_signal(srv, shutdown)  # type: ignore[method-assign]
        watcher = asyncio.get_running_loop().create_task(stop_when_asked())
        try:
            await srv.serve(sockets=[sock])
        finally:
            watcher.cancel()
    elif server == "hypercorn":
        from hypercorn.asyncio import serve as hypercorn_serve
        from hypercorn.config import Config

        config = Config()
        # hypercorn takes ownership of (and closes) the descriptor it is given
        config.bind = [f"fd://{os.dup(sock.fileno())}"]
        config.graceful_timeout = grace_period
        config.accesslog = None
        # as under uvicorn: no Date/Server header formatted per response, and no forced
        # reconnect after 1,000 requests on a keep-alive connection
        config.include_date_header = False
        config.include_server_header = False
        config.keep_alive_max_requests = 2**62
        config.loglevel = "WARNING" if log_level == "warn" else log_level.upper()
        if tls is not None:
            config.certfile, config.keyfile = tls.cert_path, tls.key_path
            if tls.client_ca is not None:
                config.ca_certs, config.verify_mode = tls.client_ca, ssl.CERT_REQUIRED
        await hypercorn_serve(app, config, shutdown_trigger=shutdown.wait, mode="asgi")  # type: ignore[arg-type]
    else:
        raise ValueError(f"unknown server {server!r}: use uvicorn or hypercorn")


async def _drain(app: ASGIApp, srv: Any, grace: float) -> None:
    """The first part of a graceful stop (issue 15): the listener stays open and
    ``/readiness`` answers 503 ``draining`` (``app.state.draining``) while requests are in
    flight, for at most ``grace`` seconds; uvicorn's own shutdown then gets the rest of the
    grace. Streams still open when it ends are cut with an error event (smg.http.h1cycle)."""
    state = getattr(app, "state", None)
    if state is not None:
        state.draining = True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while srv.server_state.tasks and loop.time() < deadline:
        await asyncio.sleep(0.05)
    srv.config.timeout_graceful_shutdown = max(0.1, deadline - loop.time())


def _drain_on_signal(srv: Any, shutdown: asyncio.Event) -> Callable[[int, Any], None]:
    """uvicorn's SIGINT/SIGTERM handler, made to start the drain (:func:`_drain`) first; a
    second signal is uvicorn's own (shut down now, or exit at once on a second SIGINT)."""
    loop = asyncio.get_running_loop()
    original = srv.handle_exit

    def handle_exit(sig: int, frame: Any) -> None:
        if shutdown.is_set():
            original(sig, frame)
        else:
            loop.call_soon_threadsafe(shutdown.set)

    return handle_exit


def _uvicorn_tls(tls: ServerTls | None) -> dict[str, Any]:
    if tls is None:
        return {}
    options: dict[str, Any] = {"ssl_certfile": tls.cert_path, "ssl_keyfile": tls.key_path}
    if tls.client_ca is not None:
        options.update(ssl_ca_certs=tls.client_ca, ssl_cert_reqs=ssl.CERT_REQUIRED)
    return options


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def run(
    config: GatewayConfig,
    *,
    on_listening: Callable[[str], None] | None = None,
    on_ready: Callable[[str, AppState], None] | None = None,
) -> None:
    """Serve the gateway described by ``config`` until SIGINT or SIGTERM. With
    ``server.workers`` > 1, that many processes serve the port (SO_REUSEPORT), each with
    its own app and routing state; this one stops the others when it stops.

    ``on_listening(url)`` runs once the port is bound, ``on_ready(url, state)`` once
    start-up has completed (workers registered), just before the first request is
    served. A start-up that fails raises :class:`StartupError`; a port that cannot be
    bound, OSError."""
    setup_logging(config.server)
    processes = max(1, config.server.workers)
    if processes > 1 and not config.routing.prefix_tiebreak:
        # Each process has its own prefix trees: break miss ties alike in all of them.
        config = dataclasses.replace(config, routing=dataclasses.replace(config.routing, prefix_tiebreak=True))
    sock = bind_socket(config.server.host, config.server.port, reuse_port=processes > 1)
    port = sock.getsockname()[1]
    if processes > 1:
        from smg.http import worker_sync

        worker_sync.share()  # run-time worker changes reach every process (see worker_sync)
    children = _fork_servers(sock, processes - 1)
    if children is None:  # a forked gateway process: serve, then leave without the parent's cleanup
        sock = bind_socket(config.server.host, port, reuse_port=True)
        try:
            _serve_forever(config, sock)
        finally:
            os._exit(0)
    url = _url(sock)
    if config.security.tls_cert_path:
        url = url.replace("http://", "https://", 1)
    if on_listening is not None:
        on_listening(url)
    try:
        _serve_forever(config, sock, None if on_ready is None else functools.partial(on_ready, url))
    finally:
        _stop_children(children, config.server.shutdown_grace_period_secs)


def _fork_servers(sock: socket.socket, n: int) -> list[int] | None:
    """Fork ``n`` more gateway processes (before any event loop or thread exists). Returns
    the children's pids in the parent, None in a child."""
    children: list[int] = []
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            sock.close()  # the child binds its own socket to the same port
            return None
        children.append(pid)
    if children:
        log.info("serving with %d processes on port %d", n + 1, sock.getsockname()[1])
    return children


def _stop_children(children: list[int], grace: float) -> None:
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace + 5
    for pid in children:
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    time.sleep(0.05)
                    continue
            break
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _serve_forever(config: GatewayConfig, sock: socket.socket,
                   on_ready: Callable[[AppState], None] | None = None) -> None:
    from smg.app import create_app
    from smg.http.state import AppState

    loop = _new_loop()
    shutdown = asyncio.Event()

    def ask_shutdown() -> None:
        if shutdown.is_set():
            log.warning("second signal: exiting without draining")
            raise SystemExit(1)
        log.info("shutting down: draining in-flight requests")
        shutdown.set()

    if config.server.server == "uvicorn":
        # uvicorn handles SIGINT/SIGTERM itself while serving (first: drain, second: force)
        # and raises the signal again once stopped; these no-ops make that re-raise harmless.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, frame: None)
    else:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, ask_shutdown)
    try:
        try:
            state = loop.run_until_complete(AppState.start(config))
        except Exception as exc:
            log.debug("start-up failed", exc_info=True)
            raise StartupError(str(exc) or type(exc).__name__) from exc
        loop.run_until_complete(
            serve(
                create_app(config, state=state, on_ready=on_ready),
                sock,
                server=config.server.server,
                shutdown=shutdown,
                grace_period=config.server.shutdown_grace_period_secs,
                log_level=config.server.log_level,
                tls=server_tls(config.security),
                body_read_timeout=config.reliability.body_read_timeout_secs,
            )
        )
    finally:
        sock.close()
        loop.close()


class ServerThread:
    """Serve ``app`` on a free loopback port in a daemon thread with its own event loop."""

    def __init__(self, app: ASGIApp, *, server: ServerName = "uvicorn", host: str = "127.0.0.1",
                 port: int = 0, startup_timeout: float = 20.0, tls: ServerTls | None = None,
                 body_read_timeout: float | None = None, grace_period: float = 2.0) -> None:
        self.app = app
        self.server = server
        self.sock = bind_socket(host, port)
        self.tls = tls
        self.body_read_timeout = body_read_timeout
        self.grace_period = grace_period
        self.url = _url(self.sock).replace("http://", "https://", 1) if tls is not None else _url(self.sock)
        self.startup_timeout = startup_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shutdown: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> str:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._main, args=(ready,), name=f"smg-{self.server}", daemon=True)
        self._thread.start()
        ready.wait(self.startup_timeout)
        deadline = time.monotonic() + self.startup_timeout
        while not self._answers():
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"{self.server} did not start") from self._error
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.server} did not answer on {self.url}")
            time.sleep(0.02)
        return self.url

    def _answers(self) -> bool:
        if self.tls is not None:
            return _tls_answers(self.sock.getsockname()[:2])
        try:
            with urllib.request.urlopen(self.url + "/liveness", timeout=1.0):
                return True
        except urllib.error.HTTPError:
            return True  # any HTTP answer means the server is up
        except OSError:
            return False

    def _main(self, ready: threading.Event) -> None:
        self._loop = loop = _new_loop()
        asyncio.set_event_loop(loop)
        self._shutdown = asyncio.Event()
        ready.set()
        try:
            loop.run_until_complete(
                serve(self.app, self.sock, server=self.server, shutdown=self._shutdown,
                      grace_period=self.grace_period, log_level="warn", tls=self.tls,
                      body_read_timeout=self.body_read_timeout)
            )
        except BaseException as exc:  # reported by start()/stop()
            self._error = exc
        finally:
            loop.close()

    def request_stop(self) -> None:
        """Ask the server to shut down without waiting (see :meth:`stop`)."""
        if self._loop is not None and self._shutdown is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._shutdown.set)

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down (draining for up to ``grace_period`` s) and wait for its thread."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
        self.sock.close()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _tls_answers(address: tuple[str, int]) -> bool:
    """A completed (or refused) TLS handshake: the server is up. The pre-bound socket
    accepts connections before then, but only a running server answers the handshake."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection(address, timeout=1.0) as raw, ctx.wrap_socket(raw):
            return True
    except ssl.SSLError:
        return True  # it answered (a server that wants a client certificate may refuse us)
    except OSError:
        return False
