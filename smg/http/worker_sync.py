"""Run-time worker changes reach every gateway process of ``smg serve --workers N``.

The processes share the listening port (SO_REUSEPORT), so a ``POST /workers`` or
``DELETE /workers/{id}`` lands in one of them. Mechanism: before forking, the parent makes
a private directory (mode 0700) with an append-only change log, ``workers.jsonl``; the
forked processes inherit its path (:func:`share`). The process that took a change applies
it, then appends one JSON line ``{"pid", "op", "url", "role", ...}`` under an exclusive
``flock``. Every process checks the log's size every :data:`POLL_SECS` (one ``os.stat``)
and applies the lines it has not read that another process wrote. So all processes apply
the same changes in the same order, each within one poll interval; a process that
restarts reads the whole log. Nothing listens on a socket and nothing is sent to a
worker. The log holds worker URLs (possibly with credentials), hence the private
directory; the parent removes it when it exits.

Health-based removals stay per process: each process probes its workers itself.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

__all__ = ["POLL_SECS", "WorkerLog", "share", "shared_log"]

log = logging.getLogger(__name__)

POLL_SECS = 0.25
_PATH: str | None = None  # set in the parent before fork; inherited by every gateway process


def share() -> str:
    """Make the change log for this process and the ones it is about to fork."""
    global _PATH
    directory = tempfile.mkdtemp(prefix="smg-workers-")  # 0700
    path = os.path.join(directory, "workers.jsonl")
    with open(path, "xb"):
        pass
    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:
            shutil.rmtree(directory, ignore_errors=True)

    atexit.register(remove)
    _PATH = path
    return path


def shared_log() -> WorkerLog | None:
    """This process's view of the shared log, or None when it serves alone."""
    return WorkerLog(_PATH) if _PATH is not None else None


Apply = Callable[[dict[str, Any]], Awaitable[None]]


class WorkerLog:
    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = 0
        self.pid = os.getpid()
        self._partial = b""

    def publish(self, op: str, **fields: Any) -> None:
        """Append one change made by this process."""
        line = orjson.dumps({"pid": self.pid, "op": op, **fields}) + b"\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
        finally:
            os.close(fd)  # closing releases the lock

    async def poll(self, apply: Apply) -> None:
        """Apply every complete line other processes appended since the last poll."""
        try:
            if os.stat(self.path).st_size <= self.offset:
                return
            with open(self.path, "rb") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_SH)
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return
        self.offset += len(data)
        data, self._partial = self._partial + data, b""
        lines = data.split(b"\n")
        self._partial = lines.pop()  # an unterminated tail waits for the next poll
        for raw in lines:
            try:
                change = orjson.loads(raw)
            except orjson.JSONDecodeError:
                log.warning("worker change log: unreadable line skipped")
                continue
            if change.get("pid") == self.pid:
                continue
            try:
                await apply(change)
            except Exception:  # one bad change must not stop the others
                log.exception("worker change from process %s not applied", change.get("pid"))
