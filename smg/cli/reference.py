"""The reference workers a bare ``smg serve`` starts: ``smg worker --transport http``
subprocesses on free loopback ports, stopped when the gateway stops."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

__all__ = ["ReferenceWorker", "spawn_reference_workers"]

READY_RE = re.compile(r"smg worker ready: (http://\S+)")


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
