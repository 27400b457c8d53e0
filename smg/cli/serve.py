"""Run the OpenAI-compatible gateway in front of HTTP workers.

    smg serve --worker-urls http://127.0.0.1:8001 http://127.0.0.1:8002 --policy cache_aware

Settings come from defaults, then ``--config FILE`` (TOML or YAML), then ``SMG_*``
environment variables, then these flags. With no ``--worker-urls``, two reference
workers (``smg worker --transport http``) are started in the background and stopped on
exit, so ``smg serve`` alone gives a working gateway to try.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from smg.cli.fields import add_dataclass_arguments
from smg.config import GatewayConfig

__all__ = ["ReferenceWorker", "add_arguments", "run", "spawn_reference_workers"]

READY_RE = re.compile(r"smg worker ready: (http://\S+)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="TOML or YAML file with the same settings (flags override it)")
    add_dataclass_arguments(parser, GatewayConfig)
    for action in parser._actions:  # "--port PORT", not "--port SERVER.PORT"
        if action.metavar is None and action.nargs != 0 and not action.choices and "." in action.dest:
            action.metavar = action.dest.rsplit(".", 1)[1].upper()


class ReferenceWorker:
    """One ``smg worker --transport http`` subprocess on a free loopback port."""

    def __init__(self, args: Sequence[str] = (), host: str = "127.0.0.1", port: int | None = None) -> None:
        self.port = port or _free_port(host)
        cmd = [sys.executable, "-m", "smg", "worker", "--transport", "http",
               "--host", host, "--port", str(self.port), *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.url: str | None = None
        self.output: list[str] = []
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True, name=f"smg-worker-{self.port}")
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if len(self.output) < 200:
                self.output.append(line.rstrip())
            match = READY_RE.search(line)
            if match and self.url is None:
                self.url = match.group(1).rstrip("/")
                self._ready.set()
        self._ready.set()  # exited: wait() reports it

    def wait(self, timeout: float) -> str:
        """The worker's URL once it printed its ready line."""
        if not self._ready.wait(timeout) or self.url is None:
            tail = "\n".join(self.output[-20:])
            raise RuntimeError(f"smg worker on port {self.port} did not become ready:\n{tail}")
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def spawn_reference_workers(n: int = 2, args: Sequence[str] = (), timeout: float = 60.0) -> list[ReferenceWorker]:
    """Start ``n`` reference workers and wait until each is ready (stopping all on failure)."""
    workers = [ReferenceWorker(args) for _ in range(n)]
    deadline = time.monotonic() + timeout
    try:
        for w in workers:
            w.wait(max(0.1, deadline - time.monotonic()))
    except BaseException:
        for w in workers:
            w.stop()
        raise
    return workers


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _banner(url: str, config: GatewayConfig, spawned: bool) -> None:
    workers = ", ".join(config.routing.worker_urls)
    if config.pd.pd_disaggregation:
        pd = config.pd
        workers = ", ".join([*(f"prefill {u}" for u in pd.prefill if "://" in u), *(f"decode {u}" for u in pd.decode),
                             *config.routing.worker_urls])
    origin = "reference workers started by smg" if spawned else "workers"
    print(f"smg serve: listening on {url} (policy {config.routing.policy}, {config.server.server})", flush=True)
    print(f"smg serve: {origin}: {workers}", flush=True)
    print("try:\n  curl -s " + url + "/v1/chat/completions -H 'content-type: application/json' "
          "-d '{\"messages\": [{\"role\": \"user\", \"content\": \"Hello!\"}]}'", flush=True)


def run(args: argparse.Namespace) -> int:
    try:
        config = GatewayConfig.load(file=args.config, args=args)
        config.pd.prefill_workers()  # a malformed --prefill list is a configuration error
    except (OSError, ValueError) as exc:
        print(f"smg serve: bad configuration: {exc}", file=sys.stderr)
        return 2
    from smg.serve import run as serve_run

    spawned: list[ReferenceWorker] = []
    if not config.routing.worker_urls and not config.pd.pd_disaggregation:
        print("smg serve: no --worker-urls given: starting two reference workers ...", flush=True)
        try:
            spawned = spawn_reference_workers(2)
        except RuntimeError as exc:
            print(f"smg serve: {exc}", file=sys.stderr)
            return 1
        routing = dataclasses.replace(config.routing, worker_urls=tuple(w.url for w in spawned if w.url))
        config = dataclasses.replace(config, routing=routing)
    try:
        serve_run(config, on_listening=lambda url: _banner(url, config, bool(spawned)))
    except OSError as exc:
        print(f"smg serve: cannot listen on {config.server.host}:{config.server.port}: {exc}", file=sys.stderr)
        return 1
    finally:
        for w in spawned:
            w.stop()
    return 0
